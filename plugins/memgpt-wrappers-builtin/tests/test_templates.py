"""Template fidelity: every wrapper renders conversations byte for byte like its family's official template.

Both entry points are checked: ``format_chat`` (plain conversations, the summarizer) and ``format`` (the
agent protocol: system text with function docs, core memory, events, replayed calls, function results),
whose output must equal the official rendering of the same turns plus the wrapper's hint and prefill.
"""

from __future__ import annotations

import json

import pytest

from memgpt.contract.types import Message
from memgpt.functions.docs import system_text
from memgpt.testing.wrapper import SYSTEM, sample_conversation, sample_functions
from memgpt_wrappers_builtin.families import FAMILIES, WRAPPER_NAMES
from memgpt_wrappers_builtin.render import FamilyWrapper, call_json, function_result, hint_text

NAMES = sorted(WRAPPER_NAMES)

CONVERSATIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("You are a helpful assistant.", [("user", "Hi")]),
    ("", [("user", "No system prompt here.")]),
    (
        'Line one.\nLine two — with ünïcödé ☕ and {"json": [1, 2]}.',
        [("user", "What's 2+2?"), ("assistant", "4."), ("user", 'And "quoted" \\ text?\nOn two lines.')],
    ),
    ("Padded system.", [("user", "  leading and trailing spaces  \n"), ("assistant", "\tok\n"), ("user", "next")]),
    ("S", [("user", "u1"), ("user", "u2 in a row"), ("assistant", "a1"), ("assistant", "a2 in a row"), ("user", "u3")]),
]
LATE_SYSTEM = ("S", [("user", "u1"), ("assistant", "a1"), ("system", "A system alert mid-conversation."), ("user", "u2")])


def as_messages(system: str, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": r, "content": c} for r, c in turns]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
def test_format_chat_matches_the_official_template(name: str, conversation: int, official, hf) -> None:
    system, turns = CONVERSATIONS[conversation]
    spec = WRAPPER_NAMES[name]
    expected = hf(official(spec.family.key), as_messages(system, turns))
    assert FamilyWrapper.from_name(spec).format_chat(system, turns).text == expected


@pytest.mark.parametrize("family", [k for k, f in FAMILIES.items() if f.system_anywhere])
def test_system_turns_mid_conversation_match_where_the_family_has_them(family: str, official, hf) -> None:
    system, turns = LATE_SYSTEM
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES[family])
    assert wrapper.format_chat(system, turns).text == hf(official(family), as_messages(system, turns))


def test_airoboros_turns_a_late_system_message_into_a_user_turn() -> None:
    system, turns = LATE_SYSTEM
    text = FamilyWrapper.from_name(WRAPPER_NAMES["airoboros-l2-70b-2.1"]).format_chat(system, turns).text
    assert "USER: A system alert mid-conversation.\n" in text


def protocol_messages(name: str) -> list[dict[str, str]]:
    """The agent protocol turns as the official template should see them."""
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES[name])
    functions = sample_functions()
    turns = [{"role": "system", "content": system_text(SYSTEM, functions)}]
    for message in sample_conversation():
        if message.role == "assistant" and message.function_call is not None:
            turns.append({"role": "assistant", "content": call_json(message.function_call, wrapper.call_shape)})
        elif message.role == "function":
            turns.append({"role": "user", "content": function_result(message)})
        elif message.role == "system" and not wrapper.family.system_anywhere:
            turns[0]["content"] += "\n\n" + (message.content or "")
        else:
            turns.append({"role": message.role, "content": message.content or ""})
    return turns


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("first_message", [False, True])
def test_format_matches_the_official_template_plus_hint_and_prefill(name: str, first_message: bool, official, hf) -> None:
    spec = WRAPPER_NAMES[name]
    wrapper = FamilyWrapper.from_name(spec)
    functions = sample_functions()
    prompt = wrapper.format(SYSTEM, sample_conversation(), functions, first_message=first_message)
    rendered = hf(official(spec.family.key), protocol_messages(name))
    assert prompt.text.startswith(rendered)
    tail = prompt.text[len(rendered) :]
    hint = spec.family.answer_lead + hint_text(functions, first_message) if spec.variant.hints else ""
    assert tail == hint + prompt.prefill
    if spec.variant.grammar or spec.family.reasoning is not None:  # a reasoning model thinks before its call
        assert prompt.prefill == ""
    elif first_message:
        assert prompt.prefill.lstrip(" ") == '{"function": "send_message", "params": {"inner_thoughts": "'
    else:
        assert prompt.prefill.lstrip(" ") == '{"function":'


def test_llama3_opens_the_assistant_turn_with_end_header_id() -> None:
    # MemGPT's llama3 wrapper ended its prompt with "<|start_header_id|>assistant\n": no <|end_header_id|>.
    for name in ("llama3", "llama3-grammar", "llama3-hints-grammar"):
        prompt = FamilyWrapper.from_name(WRAPPER_NAMES[name]).format(SYSTEM, [], sample_functions())
        assert "<|start_header_id|>assistant<|end_header_id|>\n\n" in prompt.text
        assert prompt.text.startswith("<|start_header_id|>system<|end_header_id|>\n\n")


def test_zephyr_renders_the_system_turn_with_its_tag() -> None:
    # MemGPT's zephyr wrapper dropped <|system|>.
    for name in ("zephyr-7B", "zephyr-7B-grammar"):
        prompt = FamilyWrapper.from_name(WRAPPER_NAMES[name]).format(SYSTEM, [], sample_functions())
        assert prompt.text.startswith(f"<|system|>\n{SYSTEM}")


@pytest.mark.parametrize("name", NAMES)
def test_every_past_call_is_an_assistant_turn_holding_its_exact_json(name: str) -> None:
    # MemGPT's airoboros/dolphin/zephyr wrappers replayed the agent's calls as empty assistant turns.
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES[name])
    conversation = sample_conversation()
    text = wrapper.format(SYSTEM, conversation, sample_functions()).text
    before, after = wrapper.family.turns["assistant"]
    calls = [m.function_call for m in conversation if m.function_call is not None]
    for call in calls:
        expected = json.dumps({"function": call.name, "params": call.arguments}, ensure_ascii=False)
        assert before + expected + after in text
        assert json.loads(expected) == {"function": call.name, "params": call.arguments}
    assert before + after not in text, "an empty assistant turn was rendered"


def test_an_assistant_message_without_a_call_keeps_its_text() -> None:
    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES["chatml"])
    kept = Message(role="assistant", content="I think I will just talk. (no JSON)")
    text = wrapper.format(SYSTEM, [kept], sample_functions()).text
    assert "<|im_start|>assistant\nI think I will just talk. (no JSON)<|im_end|>\n" in text


@pytest.mark.model
@pytest.mark.parametrize(
    "name", ["chatml", "chatml-grammar", "chatml-hints", "chatml-hints-grammar", "dolphin-2.1-mistral-7b-grammar"]
)
# Without a system message SmolLM2's template inserts its own default one, so only conversations with one.
@pytest.mark.parametrize("conversation", [i for i, (system, _) in enumerate(CONVERSATIONS) if system])
def test_chatml_wrappers_match_the_template_embedded_in_the_smollm2_gguf(
    name: str, conversation: int, smollm2_template: str, hf
) -> None:
    system, turns = CONVERSATIONS[conversation]
    expected = hf(smollm2_template, as_messages(system, turns))
    assert FamilyWrapper.from_name(WRAPPER_NAMES[name]).format_chat(system, turns).text == expected
