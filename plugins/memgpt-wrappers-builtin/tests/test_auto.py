"""``auto``: the wrapper chosen from the model's chat template or name, through the ``wrapper_for_model`` hook."""

from __future__ import annotations

import pytest

from memgpt.contract.wrapper import WrapperOptions
from memgpt.plugins import get_registry
from memgpt.testing.wrapper import SYSTEM, sample_conversation, sample_functions
from memgpt_wrappers_builtin.auto import TemplateWrapper, family_for_template, make_auto, wrapper_for
from memgpt_wrappers_builtin.families import FAMILIES
from memgpt_wrappers_builtin.jinja import TemplateFailure, render

PHI3_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
# Mistral-instruct style: no system role, strict alternation, enforced with raise_exception.
ALTERNATING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_official_template_is_recognised_by_what_it_renders(family: str, official) -> None:
    found = family_for_template(official(family))
    # Dolphin 2.x is ChatML: both render identically, and the ChatML wrapper is the one picked for either.
    expected = "chatml" if family == "dolphin-2.1-mistral-7b" else family
    assert found == expected
    assert wrapper_for(None, official(family)) == f"{expected}-grammar"


@pytest.mark.model
def test_the_smollm2_gguf_template_is_chatml(smollm2_template: str) -> None:
    assert wrapper_for("SmolLM2-135M-Instruct.Q4_1.gguf", smollm2_template) == "chatml-grammar"


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("Meta-Llama-3-8B-Instruct.Q5_K_M.gguf", "llama3-grammar"),
        ("llama3.1:8b", "llama3-grammar"),
        ("dolphin-2.2.1-mistral-7b.Q5_K_M.gguf", "dolphin-2.1-mistral-7b-grammar"),
        ("zephyr-7b-beta.Q4_K_M.gguf", "zephyr-7B-grammar"),
        ("TinyLlama-1.1B-Chat-v1.0", "zephyr-7B-grammar"),
        ("airoboros-l2-70b-2.1.Q4_K_M.gguf", "airoboros-l2-70b-2.1-grammar"),
        ("Qwen2.5-7B-Instruct", "chatml-grammar"),
        ("OpenHermes-2.5-Mistral-7B", "chatml-grammar"),
        ("Qwen3-8B-Q4_K_M.gguf", "qwen3-grammar"),
        ("qwen3:4b", "qwen3-grammar"),
        ("QwQ-32B", "qwen3-grammar"),
        ("DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", "deepseek-r1-grammar"),
        ("deepseek-r1:8b", "deepseek-r1-grammar"),
        ("mystery-model-v9", None),
    ],
)
def test_model_names_pick_a_family_when_there_is_no_template(model_name: str, expected: str | None) -> None:
    assert wrapper_for(model_name, None) == expected


def test_the_template_wins_over_the_name(official) -> None:
    assert wrapper_for("zephyr-7b-beta", official("llama3")) == "llama3-grammar"


def test_the_hook_answers_through_the_plugin_manager(official) -> None:
    hook = get_registry().manager.hook  # type: ignore[union-attr]
    assert hook.wrapper_for_model(model_name=None, chat_template=official("zephyr-7B")) == "zephyr-7B-grammar"
    assert hook.wrapper_for_model(model_name="mystery", chat_template=None) is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (WrapperOptions(), "chatml-grammar"),
        (WrapperOptions(model_name="mystery-model"), "chatml-grammar"),
        (WrapperOptions(model_name="Meta-Llama-3-70B-Instruct"), "llama3-grammar"),
        (WrapperOptions(chat_template="{% for m in messages %}{{ m.content }"), "chatml-grammar"),  # does not compile
    ],
)
def test_auto_makes_the_chosen_wrapper(options: WrapperOptions, expected: str) -> None:
    wrapper = make_auto(options)
    assert wrapper.name == expected
    assert wrapper.uses_grammar


def test_auto_through_the_registry_uses_the_official_template(official) -> None:
    wrapper = get_registry().wrapper("auto").factory(WrapperOptions(chat_template=official("airoboros-l2-70b-2.1")))
    assert wrapper.name == "airoboros-l2-70b-2.1-grammar"


def test_an_unknown_template_is_rendered_by_itself(hf) -> None:
    wrapper = make_auto(WrapperOptions(model_name="phi-3-mini", chat_template=PHI3_TEMPLATE))
    assert isinstance(wrapper, TemplateWrapper)
    assert "<|end|>" in wrapper.stop
    turns = [("user", "Hi"), ("assistant", "Hello"), ("user", "Bye")]
    expected = hf(PHI3_TEMPLATE, [{"role": "system", "content": "S"}] + [{"role": r, "content": c} for r, c in turns])
    assert wrapper.format_chat("S", turns).text == expected
    prompt = wrapper.format(SYSTEM, sample_conversation(), sample_functions())
    assert prompt.text.endswith("<|assistant|>\n") and prompt.prefill == ""


def test_a_template_that_refuses_system_and_repeated_roles_gets_adapted_turns() -> None:
    wrapper = TemplateWrapper(ALTERNATING_TEMPLATE)
    assert not wrapper.late_system and not wrapper.repeated_roles
    prompt = wrapper.format(SYSTEM, sample_conversation(), sample_functions())
    assert prompt.text.startswith("[INST] " + SYSTEM)
    for message in sample_conversation():
        if message.role in ("user", "function"):
            assert (message.content or "") in prompt.text


def test_a_template_that_cannot_render_a_plain_conversation_falls_back() -> None:
    refuses = "{{ raise_exception('this template only takes tools') }}"
    with pytest.raises(TemplateFailure, match="only takes tools"):
        TemplateWrapper(refuses)
    assert make_auto(WrapperOptions(chat_template=refuses)).name == "chatml-grammar"


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{% set x = messages.append({'role': 'user', 'content': 'injected'}) %}{{ x }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_templates_run_in_a_sandbox(hostile: str) -> None:
    with pytest.raises(TemplateFailure):
        render(hostile, [{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert make_auto(WrapperOptions(chat_template=hostile)).name == "chatml-grammar"
