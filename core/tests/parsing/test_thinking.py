"""What reasoning models (DeepSeek-R1 and its distills, Qwen3, QwQ) write around their call: a think block,
then the call; a block the prompt opened (no opening tag); a block never closed; the call written inside
the block. The block is taken off, its text kept (``ParsedCall.thinking``) and made the call's inner
thoughts when the call has none; the call's own content is never changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memgpt.contract.types import CallShape
from memgpt.errors import ParseError
from memgpt.parsing._call import cut_off, parse_call, split_thinking
from memgpt.testing.wrapper import sample_functions

FUNCTIONS = sample_functions()
SEND = {"inner_thoughts": "User said hi.", "message": "Hello!"}
SEND_JSON = json.dumps({"function": "send_message", "params": SEND})
EMPTY_THOUGHTS = json.dumps({"function": "send_message", "params": {"inner_thoughts": "", "message": "Hello!"}})
NO_THOUGHTS = json.dumps({"function": "send_message", "params": {"message": "Hello!"}})
R1_THINKING = (
    "Okay, the user just said hi. I should greet them back warmly. Core memory says nothing about them yet, "
    "so a short friendly reply with send_message is right."
)
DRAFT = json.dumps({"function": "core_memory_append", "params": {"name": "human", "content": "Says hi."}})

# (text, function, arguments, thinking, repairs the parse must name)
CASES: dict[str, tuple[str, str, dict[str, Any], str, tuple[str, ...]]] = {
    "qwen3: think block, blank line, call": (
        f"<think>\n{R1_THINKING}\n</think>\n\n{SEND_JSON}",
        "send_message",
        SEND,
        R1_THINKING,
        (),
    ),
    "r1 distill: the prompt opened the block": (f"{R1_THINKING}\n</think>\n\n{SEND_JSON}", "send_message", SEND, R1_THINKING, ()),
    "r1 distill: an empty block the prompt opened": (f"\n</think>\n\n{SEND_JSON}", "send_message", SEND, "", ()),
    "qwen3 non-thinking mode: empty block": (f"<think>\n\n</think>\n\n{SEND_JSON}", "send_message", SEND, "", ()),
    "thinking fills empty inner thoughts": (
        f"<think>\n{R1_THINKING}\n</think>\n\n{EMPTY_THOUGHTS}",
        "send_message",
        {"inner_thoughts": R1_THINKING, "message": "Hello!"},
        R1_THINKING,
        ("thinking_as_inner_thoughts",),
    ),
    "thinking fills absent inner thoughts": (
        f"{R1_THINKING}</think>{NO_THOUGHTS}",
        "send_message",
        {"inner_thoughts": R1_THINKING, "message": "Hello!"},
        R1_THINKING,
        ("thinking_as_inner_thoughts",),
    ),
    "think, then the call in a json fence": (
        f"<think>\nShort reply.\n</think>\n\n```json\n{SEND_JSON}\n```",
        "send_message",
        SEND,
        "Short reply.",
        (),
    ),
    "qwq: think, then a tool_call tag": (
        "<think>\nGreet back.\n</think>\n\n<tool_call>\n"
        + json.dumps({"name": "send_message", "arguments": SEND})
        + "\n</tool_call>",
        "send_message",
        SEND,
        "Greet back.",
        ("key_aliases",),
    ),
    "a draft call inside the block, the real one after": (
        f"<think>\nMaybe {DRAFT}? No: they only greeted me.\n</think>\n\n{SEND_JSON}",
        "send_message",
        SEND,
        f"Maybe {DRAFT}? No: they only greeted me.",
        (),
    ),
    "the call inside a closed block, nothing after": (
        f"<think>\nI will answer with {SEND_JSON}\n</think>",
        "send_message",
        SEND,
        "I will answer with",
        ("call_in_think",),
    ),
    "unclosed block holding the call": (
        f"<think>\nThe user said hi, so: {SEND_JSON}",
        "send_message",
        SEND,
        "The user said hi, so:",
        ("unclosed_think",),
    ),
    "thinking with < and braces": (
        f"<think>\nIf n < 3 then {{skip}}.\n</think>\n{SEND_JSON}",
        "send_message",
        SEND,
        "If n < 3 then {skip}.",
        (),
    ),
    "a closing tag inside the message is content": (
        json.dumps({"function": "send_message", "params": {"inner_thoughts": "t", "message": "tags like </think> end it"}}),
        "send_message",
        {"inner_thoughts": "t", "message": "tags like </think> end it"},
        "",
        (),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reasoning_output(name: str) -> None:
    text, function, arguments, thinking, repairs = CASES[name]
    parsed = parse_call(text, FUNCTIONS)
    assert parsed.call.name == function
    assert {k: v for k, v in parsed.call.arguments.items() if k != "request_heartbeat"} == arguments
    assert parsed.thinking == thinking
    for repair in repairs:
        assert repair in parsed.repairs


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"<think>\n{R1_THINKING}", "stopped while thinking"),
        (f"<think>\n{R1_THINKING}\n</think>\n\n", "only thinking"),
        (f"<think>\n{R1_THINKING}\n</think>\n\nHello there!", "no JSON object"),
    ],
)
def test_thinking_without_a_call_is_a_one_line_error(text: str, match: str) -> None:
    with pytest.raises(ParseError, match=match) as caught:
        parse_call(text, FUNCTIONS)
    assert "\n" not in str(caught.value) and caught.value.raw == text


def test_a_shape_with_its_own_delimiters_is_read() -> None:
    shape = CallShape(think_open="[[reason]]", think_close="[[/reason]]", max_think_chars=50)
    parsed = parse_call(f"[[reason]]ok then[[/reason]]{EMPTY_THOUGHTS}", FUNCTIONS, shape)
    assert parsed.thinking == "ok then" and parsed.call.inner_thoughts == "ok then"
    assert split_thinking(SEND_JSON, shape) is None


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("<think>\nstill thinking when the tokens ran out", True),
        ('<think>\ndone\n</think>\n\n{"function": "send_message", "params": {"inner_thoughts": "a', True),
        (f"<think>\ndone\n</think>\n\n{SEND_JSON}", False),
        (f"done</think>{SEND_JSON}", False),
    ],
)
def test_cut_off_sees_a_block_never_closed(text: str, cut: bool) -> None:
    assert cut_off(text) is cut
