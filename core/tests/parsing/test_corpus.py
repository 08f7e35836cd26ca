"""A corpus of what local models really write instead of one clean call, each with the call it must yield
(and the repairs named) or the error it must raise. Content is never changed: non-ASCII, escaped quotes and
newlines come back exactly as the model meant them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from memgpt.errors import ArgumentError, ParseError, UnknownFunctionError
from memgpt.parsing._call import parse_call
from memgpt.testing.wrapper import sample_functions

FUNCTIONS = sample_functions()

SEND = {"inner_thoughts": "User said hi.", "message": "Hello!"}
SEND_JSON = json.dumps({"function": "send_message", "params": SEND})
APPEND = {"inner_thoughts": "Note it.", "name": "human", "content": "Likes green tea.", "request_heartbeat": True}
APPEND_JSON = json.dumps({"function": "core_memory_append", "params": APPEND})


@dataclass(frozen=True)
class Case:
    text: str
    function: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    repairs: tuple[str, ...] = ()
    rest: str = ""
    error: type[ParseError] | None = None
    match: str = ""


def ok(text: str, function: str, arguments: dict[str, Any], *repairs: str, rest: str = "") -> Case:
    return Case(text, function, arguments, tuple(repairs), rest)


def fails(text: str, error: type[ParseError], match: str) -> Case:
    return Case(text, error=error, match=match)


CORPUS: dict[str, Case] = {
    # --- clean, or only whitespace around it
    "exact": ok(SEND_JSON, "send_message", SEND),
    "whitespace around": ok(f"\n\n  {SEND_JSON}  \n", "send_message", SEND),
    "compact separators": ok(SEND_JSON.replace(", ", ",").replace(": ", ":"), "send_message", SEND),
    "pretty printed": ok(json.dumps({"function": "send_message", "params": SEND}, indent=2), "send_message", SEND),
    "keys in another order": ok(json.dumps({"params": SEND, "function": "send_message"}), "send_message", SEND),
    # --- prose and fences around the object
    "prose before": ok(f"Sure! Here is my response:\n{SEND_JSON}", "send_message", SEND, "surrounding_text"),
    "prose after": ok(
        f"{SEND_JSON}\nLet me know if you need anything else.",
        "send_message",
        SEND,
        "surrounding_text",
        rest="Let me know if you need anything else.",
    ),
    "prose on both sides": ok(f"Okay. {SEND_JSON} Done.", "send_message", SEND, "surrounding_text", rest="Done."),
    "json fence": ok(f"```json\n{SEND_JSON}\n```", "send_message", SEND, "code_fence"),
    "bare fence": ok(f"```\n{SEND_JSON}\n```", "send_message", SEND, "code_fence"),
    "fence with prose": ok(
        f"I'll greet them.\n```json\n{SEND_JSON}\n```\nHope that helps.",
        "send_message",
        SEND,
        "code_fence",
        "surrounding_text",
        rest="Hope that helps.",
    ),
    "chat tokens around": ok(
        f"<|im_start|>assistant\n{SEND_JSON}<|im_end|>", "send_message", SEND, "surrounding_text", rest="<|im_end|>"
    ),
    "thought then action": ok(
        f"Thought: the user greeted me.\nAction:\n```json\n{APPEND_JSON}\n```",
        "core_memory_append",
        APPEND,
        "code_fence",
        "surrounding_text",
    ),
    "braces in prose before": ok(f"I think {{this}} is fine: {SEND_JSON}", "send_message", SEND, "surrounding_text"),
    "empty object in prose before": ok(f"Starting from {{}} I answer {SEND_JSON}", "send_message", SEND, "surrounding_text"),
    # --- two objects
    "two objects": ok(SEND_JSON + APPEND_JSON, "send_message", SEND, "concatenated_objects", rest=APPEND_JSON),
    "two objects on two lines": ok(
        f"{APPEND_JSON}\n{SEND_JSON}", "core_memory_append", APPEND, "concatenated_objects", rest=SEND_JSON
    ),
    "object then echo of the user": ok(
        f'{SEND_JSON}\nUSER: {{"type": "user_message"}}',
        "send_message",
        SEND,
        "surrounding_text",
        rest='USER: {"type": "user_message"}',
    ),
    # --- cut off
    "one brace missing": ok(SEND_JSON[:-1], "send_message", SEND, "closed_braces"),
    "two braces missing": ok(SEND_JSON[:-2], "send_message", SEND, "closed_braces"),
    "cut inside the message": ok(
        SEND_JSON[: SEND_JSON.index("Hello") + 3], "send_message", {**SEND, "message": "Hel"}, "closed_string", "closed_braces"
    ),
    "cut after a backslash": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "a\\',
        "send_message",
        {"inner_thoughts": "x", "message": "a"},
        "closed_string",
        "closed_braces",
    ),
    "cut inside a unicode escape": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "caf\\u00',
        "send_message",
        {"inner_thoughts": "x", "message": "caf"},
        "closed_string",
        "closed_braces",
    ),
    "cut inside a surrogate pair": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "tea \\ud83c',
        "send_message",
        {"inner_thoughts": "x", "message": "tea "},
        "closed_string",
        "closed_braces",
    ),
    "cut after an escaped backslash": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "C:\\\\u',
        "send_message",
        {"inner_thoughts": "x", "message": "C:\\u"},
        "closed_string",
        "closed_braces",
    ),
    "cut in a fence": ok(f"```json\n{SEND_JSON[:-1]}", "send_message", SEND, "code_fence", "closed_braces"),
    "brace missing before the closing fence": ok(
        f"```json\n{SEND_JSON[:-1]}\n```", "send_message", SEND, "code_fence", "closed_braces"
    ),
    "brace missing after a literal": ok(APPEND_JSON[:-2], "core_memory_append", APPEND, "closed_braces"),
    "cut with trailing space": ok(SEND_JSON[:-2] + "  \n", "send_message", SEND, "closed_braces"),
    # --- string content survives exactly
    "escaped newlines": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": "Line 1\nLine 2\ttabbed"}}),
        "send_message",
        {**SEND, "message": "Line 1\nLine 2\ttabbed"},
    ),
    "raw newline in a string": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "Line 1\nLine 2"}}',
        "send_message",
        {"inner_thoughts": "x", "message": "Line 1\nLine 2"},
    ),
    "non-ascii raw": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": "Grüße aus Zürich 🍵 — 你好"}}, ensure_ascii=False),
        "send_message",
        {**SEND, "message": "Grüße aus Zürich 🍵 — 你好"},
    ),
    "non-ascii escaped": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": "naïve café 🍵"}}),
        "send_message",
        {**SEND, "message": "naïve café 🍵"},
    ),
    "escaped quotes": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": 'He said "hi" \\o/'}}),
        "send_message",
        {**SEND, "message": 'He said "hi" \\o/'},
    ),
    "braces inside strings": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": "use {curly} } braces {"}}),
        "send_message",
        {**SEND, "message": "use {curly} } braces {"},
    ),
    "json inside a string": ok(
        json.dumps({"function": "send_message", "params": {**SEND, "message": SEND_JSON}}),
        "send_message",
        {**SEND, "message": SEND_JSON},
    ),
    "unescaped inner quotes": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "He said "hi" to me"}}',
        "send_message",
        {"inner_thoughts": "x", "message": 'He said "hi" to me'},
        "json_repair",
    ),
    # --- not JSON, but JSON-ish
    "single quotes": ok(
        "{'function': 'send_message', 'params': {'inner_thoughts': 'User said hi.', 'message': 'Hello!'}}",
        "send_message",
        SEND,
        "json_repair",
    ),
    "single quotes with an apostrophe": ok(
        "{'function': 'send_message', 'params': {'inner_thoughts': 'hi', 'message': \"it's me, Grüße\"}}",
        "send_message",
        {"inner_thoughts": "hi", "message": "it's me, Grüße"},
        "json_repair",
    ),
    "trailing commas": ok(
        '{"function": "send_message", "params": {"inner_thoughts": "User said hi.", "message": "Hello!",},}',
        "send_message",
        SEND,
        "json_repair",
    ),
    "python literals": ok(APPEND_JSON.replace("true", "True"), "core_memory_append", APPEND, "json_repair"),
    "python None page": ok(
        '{"function": "conversation_search", "params": {"inner_thoughts": "x", "query": "tea", "page": 0, "request_heartbeat": False}}',
        "conversation_search",
        {"inner_thoughts": "x", "query": "tea", "page": 0, "request_heartbeat": False},
        "json_repair",
    ),
    "unquoted keys": ok(
        '{function: "send_message", params: {inner_thoughts: "User said hi.", message: "Hello!"}}',
        "send_message",
        SEND,
        "json_repair",
    ),
    "missing comma": ok(
        '{"function": "send_message" "params": {"inner_thoughts": "User said hi." "message": "Hello!"}}',
        "send_message",
        SEND,
        "json_repair",
    ),
    # --- other layouts
    "name and arguments": ok(json.dumps({"name": "send_message", "arguments": SEND}), "send_message", SEND, "key_aliases"),
    "arguments as a json string": ok(
        json.dumps({"name": "send_message", "arguments": json.dumps(SEND)}), "send_message", SEND, "key_aliases", "params_string"
    ),
    "function_call wrapper": ok(
        json.dumps({"function_call": {"name": "send_message", "arguments": SEND}}), "send_message", SEND, "key_aliases"
    ),
    "thoughts beside function_call": ok(
        json.dumps(
            {"inner_thoughts": "User said hi.", "function_call": {"name": "send_message", "arguments": {"message": "Hello!"}}}
        ),
        "send_message",
        SEND,
        "key_aliases",
        "inner_thoughts_moved",
    ),
    "tool_calls list": ok(
        json.dumps(
            {
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "send_message", "arguments": json.dumps(SEND)}}
                ]
            }
        ),
        "send_message",
        SEND,
        "key_aliases",
        "params_string",
    ),
    "openai tool layout": ok(
        json.dumps({"type": "function", "function": {"name": "send_message", "arguments": SEND}}),
        "send_message",
        SEND,
        "key_aliases",
    ),
    "parameters key": ok(json.dumps({"function": "send_message", "parameters": SEND}), "send_message", SEND, "key_aliases"),
    "args key": ok(json.dumps({"function": "send_message", "args": SEND}), "send_message", SEND, "key_aliases"),
    "action and action_input": ok(
        json.dumps({"action": "send_message", "action_input": SEND}), "send_message", SEND, "key_aliases"
    ),
    "flattened params": ok(
        json.dumps({"function": "send_message", **SEND}), "send_message", SEND, "flattened_params", "inner_thoughts_moved"
    ),
    "heartbeat beside params": ok(
        json.dumps(
            {
                "function": "core_memory_append",
                "params": {k: v for k, v in APPEND.items() if k != "request_heartbeat"},
                "request_heartbeat": True,
            }
        ),
        "core_memory_append",
        APPEND,
        "flattened_params",
    ),
    "thoughts outside params": ok(
        json.dumps({"inner_thoughts": "User said hi.", "function": "send_message", "params": {"message": "Hello!"}}),
        "send_message",
        SEND,
        "inner_thoughts_moved",
    ),
    "inner_monologue alias": ok(
        json.dumps({"function": "send_message", "params": {"inner_monologue": "User said hi.", "message": "Hello!"}}),
        "send_message",
        SEND,
        "key_aliases",
    ),
    "thinking alias at the top": ok(
        json.dumps({"thinking": "User said hi.", "function": "send_message", "params": {"message": "Hello!"}}),
        "send_message",
        SEND,
        "inner_thoughts_moved",
    ),
    "list around the call": ok(f"[{SEND_JSON}]", "send_message", SEND, "unwrapped_list"),
    "prefill repeated inside": ok('{"function": ' + SEND_JSON + "}", "send_message", SEND, "key_aliases"),
    # The call inside decodes on its own; what precedes it is cut away like prose.
    "prefill repeated, brace missing": ok('{"function": ' + SEND_JSON, "send_message", SEND, "surrounding_text"),
    # --- lenient only where the meaning is certain
    "no inner thoughts": ok(
        json.dumps({"function": "send_message", "params": {"message": "Hello!"}}), "send_message", {"message": "Hello!"}
    ),
    "heartbeat as a string": ok(APPEND_JSON.replace("true", '"true"'), "core_memory_append", APPEND, "coerced_types"),
    "page as a string": ok(
        json.dumps(
            {
                "function": "conversation_search",
                "params": {"inner_thoughts": "x", "query": "tea", "page": "2", "request_heartbeat": False},
            }
        ),
        "conversation_search",
        {"inner_thoughts": "x", "query": "tea", "page": 2, "request_heartbeat": False},
        "coerced_types",
    ),
    "page as a float": ok(
        json.dumps(
            {
                "function": "conversation_search",
                "params": {"inner_thoughts": "x", "query": "tea", "page": 1.0, "request_heartbeat": False},
            }
        ),
        "conversation_search",
        {"inner_thoughts": "x", "query": "tea", "page": 1, "request_heartbeat": False},
        "coerced_types",
    ),
    "heartbeat left out": ok(
        json.dumps({"function": "core_memory_append", "params": {k: v for k, v in APPEND.items() if k != "request_heartbeat"}}),
        "core_memory_append",
        {**APPEND, "request_heartbeat": False},
        "defaulted_request_heartbeat",
    ),
    "function name case": ok(SEND_JSON.replace('"send_message"', '"Send_Message"'), "send_message", SEND, "function_name_case"),
    "function name with spaces": ok(
        SEND_JSON.replace('"send_message"', '"send message"'), "send_message", SEND, "function_name_case"
    ),
    "dates": ok(
        json.dumps(
            {
                "function": "conversation_search_date",
                "params": {
                    "inner_thoughts": "x",
                    "start_date": "2024-02-29",
                    "end_date": "2024-03-01",
                    "request_heartbeat": False,
                },
            }
        ),
        "conversation_search_date",
        {"inner_thoughts": "x", "start_date": "2024-02-29", "end_date": "2024-03-01", "request_heartbeat": False},
    ),
    # --- errors, each saying what is wrong
    "empty": fails("", ParseError, "empty"),
    "only whitespace": fails(" \n\t ", ParseError, "empty"),
    "prose only": fails("Hello there! How can I help you today?", ParseError, "no JSON object"),
    "unknown function": fails(
        SEND_JSON.replace("send_message", "send_email"),
        UnknownFunctionError,
        "no function 'send_email'; call one of: send_message, pause_heartbeats",
    ),
    "unknown function with stray keys": fails(
        json.dumps({"function": "set_cookie", "data": "S1C2"}), UnknownFunctionError, "'set_cookie'"
    ),
    "unknown function by alias": fails(
        json.dumps({"name": "web_search", "arguments": {"query": "tea"}}), UnknownFunctionError, "web_search"
    ),
    "missing required parameter": fails(
        json.dumps({"function": "send_message", "params": {"inner_thoughts": "x"}}),
        ArgumentError,
        "send_message: missing required parameter 'message'",
    ),
    "extra parameter": fails(
        json.dumps({"function": "send_message", "params": {**SEND, "mood": "happy"}}),
        ArgumentError,
        r"unexpected parameter\(s\) 'mood'",
    ),
    "wrong type": fails(
        json.dumps(
            {
                "function": "conversation_search",
                "params": {"inner_thoughts": "x", "query": "tea", "page": "two", "request_heartbeat": False},
            }
        ),
        ArgumentError,
        "parameter 'page' must be integer, got 'two'",
    ),
    "wrong enum value": fails(
        APPEND_JSON.replace('"human"', '"user"'), ArgumentError, "parameter 'name' must be one of 'persona', 'human', got 'user'"
    ),
    "impossible date": fails(
        json.dumps(
            {
                "function": "conversation_search_date",
                "params": {
                    "inner_thoughts": "x",
                    "start_date": "2023-02-29",
                    "end_date": "2023-03-01",
                    "request_heartbeat": False,
                },
            }
        ),
        ArgumentError,
        "'start_date' must be a date",
    ),
    "minutes over the maximum": fails(
        json.dumps({"function": "pause_heartbeats", "params": {"inner_thoughts": "x", "minutes": 9999}}),
        ArgumentError,
        "'minutes'.*maximum of 360",
    ),
    "message too long": fails(
        json.dumps({"function": "send_message", "params": {"inner_thoughts": "x", "message": "y" * 1201}}),
        ArgumentError,
        "at most 1200 characters, got 1201",
    ),
    "empty content": fails(APPEND_JSON.replace("Likes green tea.", ""), ArgumentError, "'content' must be at least 1 characters"),
    "params not an object": fails(
        json.dumps({"function": "send_message", "params": ["Hello!"]}), ArgumentError, "params must be a JSON object, got list"
    ),
    "arguments string not json": fails(
        json.dumps({"name": "send_message", "arguments": "Hello!"}), ArgumentError, "not a JSON object"
    ),
    "a list of numbers": fails("[1, 2, 3]", ParseError, "list without a call"),
    "a bare string": fails('"just a string"', ParseError, "no JSON object"),
    "no function key": fails(json.dumps({"message": "Hello!"}), ParseError, "names no function"),
    "stray top-level key": fails(
        json.dumps({"function": "send_message", "params": SEND, "mood": "happy"}), ArgumentError, "unexpected key"
    ),
    "two different thoughts": fails(
        json.dumps({"inner_thoughts": "a", "function": "send_message", "params": {"inner_thoughts": "b", "message": "m"}}),
        ArgumentError,
        "two different inner thoughts",
    ),
    "cut inside a key": fails(
        '{"function": "send_message", "params": {"inner_thoughts": "User said hi.", "mess', ParseError, "would change its text"
    ),
    "cut inside the function name": fails('{"function": "send_mess', UnknownFunctionError, "'send_mess'"),
    "cut inside a number": fails(
        '{"function": "conversation_search", "params": {"inner_thoughts": "x", "query": "tea", "page": 10',
        ParseError,
        "middle of a value",
    ),
    "comment inside": ok(
        '{"function": "send_message", // greet\n "params": {"inner_thoughts": "x", "message": "hi"}}',
        "send_message",
        {"inner_thoughts": "x", "message": "hi"},
        "json_repair",
    ),
    "function name not a string": fails(json.dumps({"function": 7, "params": SEND}), ParseError, "names no function"),
}


def test_the_corpus_is_big_and_varied() -> None:
    assert len(CORPUS) >= 60
    assert sum(case.error is None for case in CORPUS.values()) >= 40
    assert sum(case.error is not None for case in CORPUS.values()) >= 20


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(name: str) -> None:
    case = CORPUS[name]
    if case.error is not None:
        with pytest.raises(case.error, match=case.match) as caught:
            parse_call(case.text, FUNCTIONS)
        assert caught.value.raw == case.text, "the raw output must travel with the error"
        return
    parsed = parse_call(case.text, FUNCTIONS)
    assert parsed.call.name == case.function
    assert parsed.call.arguments == case.arguments
    assert parsed.repairs == case.repairs
    assert parsed.rest == case.rest
