"""Defects found by outside material (issue 11), each pinned by a test that failed before its fix: a repair
that changed a number, comments inside the object, markdown-escaped underscores, inputs that made the
parser slow, lone surrogates, and calls that reached a function unvalidated."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from memgpt.contract.types import CallShape, FunctionCall, FunctionSchema, Message
from memgpt.contract.wrapper import Prompt, Wrapper
from memgpt.errors import ArgumentError, ParseError, UnknownFunctionError
from memgpt.parsing import _call as parsing
from memgpt.parsing import _json_text as json_text
from memgpt.parsing._call import parse_call
from memgpt.testing.wrapper import sample_functions

FUNCTIONS = sample_functions()


# ---- 1: a repair must never change a value ----


@pytest.mark.parametrize("number", ["18", "109", "360", "7"])
@pytest.mark.parametrize("thoughts", ["plain", "line\\none", 'say \\"hi\\"', "tab\\there", "\\u00e9t\\u00e9"])
def test_a_missing_colon_before_a_number_is_never_repaired_into_another_number(thoughts: str, number: str) -> None:
    text = '{"function": "pause_heartbeats", "params": {"inner_thoughts": "' + thoughts + '", "minutes" ' + number + "}}"
    try:
        parsed = parse_call(text, FUNCTIONS)
    except ParseError:
        return  # refusing is right: the text does not say which key the number belongs to
    assert parsed.call.arguments["minutes"] == int(number), parsed


def test_a_repair_that_drops_digits_is_refused_even_with_escapes_elsewhere() -> None:
    text = '{"function": "pause_heartbeats", "params": {"inner_thoughts": "a\\nb\\nc\\nd", "minutes" 18}}'
    with pytest.raises(ParseError, match="change"):
        parse_call(text, FUNCTIONS)


def test_escapes_do_not_hide_dropped_words() -> None:
    # json-repair drops the unquoted word after the string; the escapes used to pay for it in the count.
    text = "{'function': 'send_message', 'params': {'inner_thoughts': 'a\\nb\\tc\\nd\\ne', 'message': 'hi' there}}"
    try:
        parsed = parse_call(text, FUNCTIONS)
    except ParseError:
        return
    assert "there" in json.dumps(parsed.call.arguments)


# ---- 5: comments inside the object, escaped underscores ----


def test_a_line_comment_inside_the_object_is_stripped() -> None:
    text = '{\n  "function": "send_message",\n  // the user said hi\n  "params": {"inner_thoughts": "Greet.", "message": "Hello!"}\n}'
    parsed = parse_call(text, FUNCTIONS)
    assert parsed.call == FunctionCall(name="send_message", arguments={"inner_thoughts": "Greet.", "message": "Hello!"})
    assert "json_repair" in parsed.repairs


def test_a_block_comment_inside_the_object_is_stripped() -> None:
    text = '{"function": "send_message", /* reply */ "params": {"inner_thoughts": "Greet.", "message": "Hello!"}}'
    parsed = parse_call(text, FUNCTIONS)
    assert parsed.call.arguments["message"] == "Hello!"


def test_comment_markers_inside_strings_are_text() -> None:
    text = "{'function': 'send_message', 'params': {'inner_thoughts': 'see http://x.org', 'message': 'a /* b */ c'}}"
    parsed = parse_call(text, FUNCTIONS)
    assert parsed.call.arguments == {"inner_thoughts": "see http://x.org", "message": "a /* b */ c"}


def test_escaped_underscores_in_names_and_keys_are_read_as_underscores() -> None:
    text = '{"function": "send\\_message", "params": {"inner\\_thoughts": "Hi.", "message": "Hello!"}}'
    parsed = parse_call(text, FUNCTIONS)
    assert parsed.call == FunctionCall(name="send_message", arguments={"inner_thoughts": "Hi.", "message": "Hello!"})
    assert "escaped_underscores" in parsed.repairs


def test_an_escaped_backslash_before_an_underscore_stays_text() -> None:
    text = json.dumps({"function": "send_message", "params": {"inner_thoughts": "x", "message": "C:\\_dir"}})
    assert parse_call(text, FUNCTIONS).call.arguments["message"] == "C:\\_dir"


# ---- 6: inputs that made the parser slow are bounded, with a clear error ----


def test_a_run_of_open_braces_is_refused_for_its_nesting_without_json_repair(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []
    monkeypatch.setattr(json_text, "_json_repair", lambda *a, **k: called.append(1))
    with pytest.raises(ParseError, match="nests"):
        parse_call("{" * 100_000, FUNCTIONS)
    assert called == []


def test_an_oversized_broken_output_is_refused_for_its_size_without_json_repair(monkeypatch: pytest.MonkeyPatch) -> None:
    import json_repair

    called = []
    monkeypatch.setattr(json_repair, "repair_json", lambda *a, **k: called.append(1))
    text = "{'function': 'send_message', 'params': {'inner_thoughts': 'x', 'message': '" + "a" * 1_000_000 + "'}}"
    with pytest.raises(ParseError, match="characters"):
        parse_call(text, FUNCTIONS)
    assert called == []


def test_a_valid_call_of_any_size_is_still_read() -> None:
    note = FunctionSchema(
        name="note", parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    )
    text = json.dumps({"function": "note", "params": {"inner_thoughts": "x", "text": "a" * 300_000}})
    assert parse_call(text, [note]).call.arguments["text"] == "a" * 300_000


def test_a_repair_just_under_the_bound_still_works() -> None:
    body = "a" * (json_text.MAX_REPAIR_CHARS - 200)
    text = "{'function': 'archival_memory_insert', 'params': {'inner_thoughts': 'x', 'content': '" + body + "'}}"
    with pytest.raises(ArgumentError, match="1200"):
        parse_call(text, FUNCTIONS)  # repaired, then refused by the schema's maxLength (not by a size bound)


# ---- 7: lone surrogates never reach a call ----


@pytest.mark.parametrize(
    "text",
    [
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "bad \\ud800 half"}}',
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "bad \\udfff"}}',
        "{'function': 'send_message', 'params': {'inner_thoughts': 'x', 'message': 'bad \\ud83d'}}",
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "cut \\ud83d',
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "raw \ud800 char"}}',
        '{"function": "send_message", "params": {"inner_thoughts": "x", "mess\\udc00age": "hi"}}',
    ],
)
def test_lone_surrogates_are_refused(text: str) -> None:
    try:
        parsed = parse_call(text, FUNCTIONS)
    except ParseError as exc:
        assert "surrogate" in str(exc) or "cut off" in str(exc) or "unexpected" in str(exc)
        return
    json.dumps(parsed.call.arguments, ensure_ascii=False).encode("utf-8")  # what storage does


def test_a_lone_surrogate_is_refused_with_a_clear_error() -> None:
    text = '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "bad \\ud800 half"}}'
    with pytest.raises(ParseError, match="surrogate"):
        parse_call(text, FUNCTIONS)


def test_a_surrogate_pair_is_one_character() -> None:
    text = '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "\\ud83d\\ude00"}}'
    assert parse_call(text, FUNCTIONS).call.arguments["message"] == "😀"


# ---- 8: every call is validated, whatever produced it; a wrapper gets a correct parse ----


def test_validate_call_refuses_what_the_schema_refuses() -> None:
    with pytest.raises(UnknownFunctionError):
        parsing.validate_call(FunctionCall(name="rm_rf", arguments={}), FUNCTIONS)
    with pytest.raises(ArgumentError, match="minutes"):
        parsing.validate_call(
            FunctionCall(name="pause_heartbeats", arguments={"inner_thoughts": "x", "minutes": "lots"}), FUNCTIONS
        )
    with pytest.raises(ArgumentError, match="unexpected"):
        parsing.validate_call(FunctionCall(name="send_message", arguments={"message": "hi", "sudo": True}), FUNCTIONS)
    with pytest.raises(ArgumentError, match="surrogate"):
        parsing.validate_call(FunctionCall(name="send_message", arguments={"message": "bad \ud800"}), FUNCTIONS)


def test_validate_call_keeps_a_valid_call_and_applies_the_parser_leniency() -> None:
    call = FunctionCall(name="conversation_search", arguments={"inner_thoughts": "x", "query": "tea", "page": "2"})
    checked = parsing.validate_call(call, FUNCTIONS)
    assert checked.arguments == {"inner_thoughts": "x", "query": "tea", "page": 2, "request_heartbeat": False}
    assert parsing.validate_call(checked, FUNCTIONS) == checked


class _FormatOnly(Wrapper):
    name = "format-only"

    def format(
        self, system: str, messages: Sequence[Message], functions: Sequence[FunctionSchema], *, first_message: bool = False
    ) -> Prompt:
        return Prompt(text=system, prefill='{"function":')

    def format_chat(self, system: str, turns: Sequence[tuple[str, str]]) -> Prompt:
        return Prompt(text=system)


def test_a_wrapper_without_its_own_parse_gets_the_validating_parser() -> None:
    wrapper = _FormatOnly()
    prompt = wrapper.format("s", [], FUNCTIONS)
    call = wrapper.parse(' "send_message", "params": {"inner_thoughts": "x", "message": "hi"}}', FUNCTIONS, prompt)
    assert call == FunctionCall(name="send_message", arguments={"inner_thoughts": "x", "message": "hi"})
    with pytest.raises(ArgumentError):
        wrapper.parse(' "send_message", "params": {"inner_thoughts": "x"}}', FUNCTIONS, prompt)


def test_the_default_parse_honours_the_wrappers_call_shape() -> None:
    wrapper = _FormatOnly()
    wrapper.call_shape = CallShape(function_key="name", params_key="arguments")
    call = wrapper.parse('{"name": "send_message", "arguments": {"inner_thoughts": "x", "message": "hi"}}', FUNCTIONS, None)
    assert call.name == "send_message"
