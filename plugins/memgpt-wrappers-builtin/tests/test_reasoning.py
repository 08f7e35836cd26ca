"""Reasoning families: how a model thinks is read from its chat template, and the wrapper gives the model a
bounded thinking section before the call, which the parser takes off (into ``inner_thoughts``)."""

from __future__ import annotations

import json

import pytest

from memgpt.grammar.call import call_gbnf, max_call_chars, shape_for_budget
from memgpt.testing.wrapper import SYSTEM, sample_conversation, sample_functions
from memgpt_backend_llamacpp.grammar_check import check_gbnf
from memgpt_wrappers_builtin.auto import TemplateWrapper, reasoning_for_template
from memgpt_wrappers_builtin.families import FAMILIES, GPT_OSS_CHANNELS, THINK, THINK_OPENED, WRAPPER_NAMES
from memgpt_wrappers_builtin.render import FamilyWrapper

#: A fragment in the layout of gpt-oss's harmony template (its analysis/final channels), for detection only.
HARMONY_FRAGMENT = (
    "{% for m in messages %}<|start|>{{ m.role }}{% if m.role == 'assistant' %}<|channel|>final{% endif %}"
    "<|message|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant{% endif %}"
    "{# analysis channel: thinking #}"
)


@pytest.mark.parametrize(
    ("family", "expected"),
    [("qwen3", THINK), ("deepseek-r1", THINK_OPENED), ("chatml", None), ("llama3", None), ("zephyr-7B", None)],
)
def test_the_official_template_says_how_the_model_thinks(family: str, expected: object, official) -> None:
    assert reasoning_for_template(official(family)) == expected
    assert FAMILIES[family].reasoning == expected


def test_harmony_channels_are_recognised() -> None:
    assert reasoning_for_template(HARMONY_FRAGMENT) == GPT_OSS_CHANNELS


def test_an_unknown_thinking_template_rendered_by_itself_gets_a_thinking_shape(official) -> None:
    # Qwen3's template with another turn marker: no family renders it, so auto renders it itself.
    template = official("qwen3").replace("<|im_start|>", "<|turn|>")
    wrapper = TemplateWrapper(template)
    assert wrapper.call_shape.thinks and wrapper.call_shape.think_open == "<think>\n"
    prompt = wrapper.format(SYSTEM, sample_conversation(), sample_functions())
    assert prompt.text.endswith("<|turn|>assistant\n") and prompt.prefill == ""


@pytest.mark.parametrize("name", ["qwen3-grammar", "deepseek-r1-grammar"])
def test_a_reasoning_wrapper_reads_the_thinking_as_inner_thoughts(name: str) -> None:
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES[name])
    functions = sample_functions()
    prompt = wrapper.format(SYSTEM, sample_conversation(), functions)
    call = {"function": "send_message", "params": {"inner_thoughts": "", "message": "Hi!"}}
    opening = "" if wrapper.family.reasoning and wrapper.family.reasoning.opened_by_prompt else "<think>\n"
    text = f"{opening}The user greeted me; {{greet}} back.\n</think>\n\n{json.dumps(call)}"
    parsed = wrapper.parse(text, functions, prompt)
    assert parsed.name == "send_message" and parsed.arguments["message"] == "Hi!"
    assert parsed.inner_thoughts == "The user greeted me; {greet} back."


@pytest.mark.parametrize("name", ["qwen3-grammar", "deepseek-r1-grammar"])
@pytest.mark.parametrize("max_tokens", [200, 256, 1024])
def test_the_thinking_and_the_call_fit_the_budget_together(name: str, max_tokens: int) -> None:
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES[name])
    functions = sample_functions()
    shape = shape_for_budget(functions, max_tokens, wrapper.call_shape)
    assert max_call_chars(functions, shape) <= max_tokens
    assert shape.max_think_chars <= max_tokens // 3
    grammar = call_gbnf(functions, shape)
    check_gbnf(grammar)
    optional = not wrapper.family.reasoning.opened_by_prompt  # type: ignore[union-attr]
    assert grammar.splitlines()[0].split()[2] == ("think?" if optional else "think")
