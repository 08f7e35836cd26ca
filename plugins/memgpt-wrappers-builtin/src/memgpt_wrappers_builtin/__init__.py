"""memgpt prompt wrappers for the common open model families: ChatML, Llama 3, Airoboros 2.x, Dolphin 2.x,
Zephyr, the reasoning families Qwen3 and DeepSeek-R1, and ``auto`` (picks one from the model's chat template or name).

Registration only reads the family table; the wrappers, jinja2 and the parser load when a wrapper is made.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import hookimpl


@hookimpl
def register_wrappers(register: Any) -> None:
    from memgpt.plugin import WrapperOptions, WrapperSpec
    from memgpt_wrappers_builtin.families import DEFAULT, WRAPPER_NAMES

    def factory_for(name: str) -> Any:
        def make(options: WrapperOptions) -> Any:
            from memgpt_wrappers_builtin.render import FamilyWrapper

            return FamilyWrapper.from_name(WRAPPER_NAMES[name])

        return make

    for name, spec in WRAPPER_NAMES.items():
        register(
            WrapperSpec(
                name=name,
                factory=factory_for(name),
                description=f"{spec.family.title}: {spec.variant.meaning(spec.family)}",
                uses_grammar=spec.variant.grammar,
            )
        )

    def make_auto(options: WrapperOptions) -> Any:
        from memgpt_wrappers_builtin.auto import make_auto

        return make_auto(options)

    register(
        WrapperSpec(
            name="auto",
            factory=make_auto,
            description=f"picks the wrapper from the model's chat template or name (else {DEFAULT})",
            uses_grammar=True,
        )
    )


@hookimpl
def wrapper_for_model(model_name: str | None, chat_template: str | None) -> str | None:
    """The ``-grammar`` wrapper of the family whose template renders like the model's, or whose name matches."""
    from memgpt_wrappers_builtin.auto import wrapper_for

    return wrapper_for(model_name, chat_template)
