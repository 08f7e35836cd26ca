"""Properties of ``parse_call`` over random and adversarial text: it raises nothing but ``ParseError``
subclasses, a clean call always comes back unchanged, and no repair ever alters what the model wrote."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt.errors import ParseError
from memgpt.parsing._call import ParsedCall, parse_call
from memgpt.testing.wrapper import sample_functions

FUNCTIONS = sample_functions()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "\\",
    ":",
    ",",
    " ",
    "\n",
    "```",
    "```json\n",
    "//",
    "/*",
    "*/",
    '"function"',
    '"params"',
    '"send_message"',
    '"core_memory_append"',
    '"inner_thoughts"',
    '"message"',
    "name",
    "arguments",
    "function_call",
    "tool_calls",
    "True",
    "None",
    "NaN",
    "Infinity",
    "1e999",
    "-",
    "0",
    "\\u00",
    "\\ud83d",
    "ü☃",
    "\x00",
    "\x7f",
    '{"function": "send_message", "params": {',
    '"inner_thoughts": "hm", ',
    '"message": "hi"',
    "}}",
    '"request_heartbeat": true',
    "<|im_end|>",
    "USER:",
]


def outcome(text: str) -> ParsedCall | ParseError:
    try:
        return parse_call(text, FUNCTIONS)
    except ParseError as exc:
        assert exc.raw == text
        return exc


@given(st.text())
@SETTINGS
def test_random_text_gives_a_call_or_a_parse_error(text: str) -> None:
    outcome(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
@SETTINGS
def test_adversarial_fragments_give_a_call_or_a_parse_error(text: str) -> None:
    outcome(text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["function", "params", "name", "arguments", "message", "x"]) | st.text(max_size=5), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
@SETTINGS
def test_any_json_value_gives_a_call_or_a_parse_error(value: Any) -> None:
    outcome(json.dumps(value))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "{" * 5000,
        '{"a":' * 3000,
        '{"function": "send_message", "params": ' + "[" * 5000 + "]" * 5000 + "}",
        "```" * 2000,
    ],
)
def test_pathological_nesting_is_a_parse_error(text: str) -> None:
    assert isinstance(outcome(text), ParseError)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["send", "append", "search"]))
    thoughts = draw(TEXT)
    if kind == "send":
        return {"function": "send_message", "params": {"inner_thoughts": thoughts, "message": draw(TEXT)}}
    if kind == "append":
        params = {
            "inner_thoughts": thoughts,
            "name": draw(st.sampled_from(["persona", "human"])),
            "content": draw(TEXT.filter(bool)),
        }
        return {"function": "core_memory_append", "params": {**params, "request_heartbeat": draw(st.booleans())}}
    params = {"inner_thoughts": thoughts, "query": draw(st.text(min_size=1, max_size=20)), "page": draw(st.integers(0, 1000))}
    return {"function": "conversation_search", "params": {**params, "request_heartbeat": draw(st.booleans())}}


@given(calls(), st.booleans())
@SETTINGS
def test_a_clean_call_comes_back_unchanged_without_repairs(call: dict[str, Any], ascii_only: bool) -> None:
    parsed = parse_call(json.dumps(call, ensure_ascii=ascii_only), FUNCTIONS)
    assert (parsed.call.name, parsed.call.arguments, parsed.repairs, parsed.rest) == (call["function"], call["params"], (), "")


WRAPPINGS = [
    ("Sure:\n", ""),
    ("", "\nAnything else?"),
    ("```json\n", "\n```"),
    ("Here:\n```\n", "\n```\nBye"),
    ("<|im_start|>assistant\n", "<|im_end|>"),
]


@given(calls(), st.sampled_from(WRAPPINGS))
@SETTINGS
def test_a_call_wrapped_in_prose_or_fences_comes_back_unchanged(call: dict[str, Any], wrapping: tuple[str, str]) -> None:
    before, after = wrapping
    parsed = parse_call(before + json.dumps(call, ensure_ascii=False) + after, FUNCTIONS)
    assert (parsed.call.name, parsed.call.arguments) == (call["function"], call["params"])
    assert parsed.repairs


@given(calls(), st.data())
@SETTINGS
def test_a_cut_off_call_is_refused_or_keeps_exactly_what_was_written(call: dict[str, Any], data: st.DataObject) -> None:
    text = json.dumps(call, ensure_ascii=data.draw(st.booleans()))
    cut = data.draw(st.integers(1, len(text)))
    result = outcome(text[:cut])
    if isinstance(result, ParseError):
        return
    assert result.call.name == call["function"]
    for key, value in result.call.arguments.items():
        if key == "request_heartbeat" and "defaulted_request_heartbeat" in result.repairs:
            assert value is False
            continue
        original = call["params"][key]
        if isinstance(value, str):
            assert original.startswith(value), f"{key}: {value!r} is not a prefix of {original!r}"
        else:
            assert value == original, key


@given(calls(), st.lists(st.sampled_from(FRAGMENTS[:20]), min_size=1, max_size=3), st.data())
@SETTINGS
def test_corrupted_calls_never_come_back_with_altered_strings(call: dict[str, Any], junk: list[str], data: st.DataObject) -> None:
    text = json.dumps(call, ensure_ascii=False)
    at = data.draw(st.integers(0, len(text)))
    result = outcome(text[:at] + "".join(junk) + text[at:])
    if isinstance(result, ParseError):
        return
    # Whatever came back must be text the model wrote: every string argument occurs in the corrupted output
    # once its JSON escapes are read as the characters they stand for.
    written = unescaped(text[:at] + "".join(junk) + text[at:])
    for value in result.call.arguments.values():
        if isinstance(value, str):
            assert value in written, value


# \' is no JSON escape, but in the single-quoted strings models write it means an apostrophe.
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def unescaped(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _SIMPLE[code]

    out = re.sub(r"\\(u[0-9a-fA-F]{4}|[\"\\/'bfnrt])", one, text)
    return out.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
