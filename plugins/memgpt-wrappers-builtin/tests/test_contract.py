"""Every builtin wrapper, and ``auto`` in each of its outcomes, meets core's ``WrapperContract``."""

from __future__ import annotations

from memgpt.contract.wrapper import Wrapper, WrapperOptions
from memgpt.testing.wrapper import WrapperContract
from memgpt_wrappers_builtin.families import WRAPPER_NAMES

# An unknown family's template (Phi-3 layout): ``auto`` renders it itself.
PHI3_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _opened_thinking(self: WrapperContract, wrapper: Wrapper) -> None:
    """DeepSeek-R1's generation prompt opens a thinking block that past answers do not show (its template
    drops their thinking): the opening is where an answer goes, plus ``<think>\n``."""
    turns = [("user", "Summarize: they talked about tea."), ("assistant", "Tea was discussed.")]
    opened = wrapper.format_chat("You summarize conversations.", turns[:1]).text
    answered = wrapper.format_chat("You summarize conversations.", turns[:2]).text
    assert opened.endswith("<think>\n")
    assert answered.startswith(opened.removesuffix("<think>\n") + turns[1][1])


for _name, _spec in WRAPPER_NAMES.items():
    _class = f"TestWrapper_{_name.replace('-', '_').replace('.', '_')}"
    _members: dict[str, object] = {"wrapper_name": _name}
    if _spec.family.reasoning is not None and _spec.family.reasoning.opened_by_prompt:
        _members["test_format_chat_keeps_the_turns_in_order_and_ends_with_the_assistant_opening"] = _opened_thinking
    globals()[_class] = type(_class, (WrapperContract,), _members)


class TestAutoWithNothingKnown(WrapperContract):
    wrapper_name = "auto"


class TestAutoFromLlama3Name(WrapperContract):
    wrapper_name = "auto"
    options = WrapperOptions(model_name="Meta-Llama-3-8B-Instruct.Q5_K_M.gguf")


class TestAutoWithAnUnknownTemplate(WrapperContract):
    wrapper_name = "auto"
    options = WrapperOptions(model_name="phi-3-mini", chat_template=PHI3_TEMPLATE)


class TestAutoFromQwen3Name(WrapperContract):
    wrapper_name = "auto"
    options = WrapperOptions(model_name="Qwen3-8B-Q4_K_M.gguf")
