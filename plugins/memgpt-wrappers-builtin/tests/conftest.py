"""Shared helpers for the builtin wrappers' tests: the official templates and an independent renderer.

``hf_render`` is written here, not imported from the plugin, so the fidelity tests do not compare the
plugin's jinja code with itself: it configures jinja2 as Hugging Face's ``apply_chat_template`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATES = Path(__file__).parent / "templates"


def official_template(family: str) -> str:
    return (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")


def hf_render(
    template: str, messages: list[dict[str, str]], *, add_generation_prompt: bool = True, eos_token: str = "</s>"
) -> str:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token="", eos_token=eos_token
    )


@pytest.fixture(scope="session")
def smollm2_template(smollm2: Path) -> str:
    """The chat template embedded in the SmolLM2 GGUF (read without loading the weights)."""
    from llama_cpp import Llama

    model = Llama(model_path=str(smollm2), vocab_only=True, verbose=False)
    try:
        return str(model.metadata["tokenizer.chat_template"])
    finally:
        model.close()


@pytest.fixture(scope="session")
def official():
    """``official(family) -> template source``."""
    return official_template


@pytest.fixture(scope="session")
def hf():
    """``hf(template, messages, add_generation_prompt=True, eos_token="</s>") -> text``."""
    return hf_render
