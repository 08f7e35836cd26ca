"""A seeded mutation fuzz of ``parse_call`` that checks the *returned call*, not only that nothing crashes:
every call the parser returns from a mutated valid call must be one the mutated text supports (its function
named there, every key and every value written there: no value changed, no key invented) and must encode
as UTF-8. Shared by ``test_mutation_fuzz.py`` (a bounded run) and ``bench/bench_schema_suite.py``.

The support check is written here, independently of the parser: it reads escapes itself.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memgpt.contract.types import FunctionCall, FunctionSchema
from memgpt.errors import ParseError
from memgpt.parsing._call import THOUGHTS_ALIASES, parse_call
from memgpt.testing.wrapper import CANONICAL_CALLS

BASE_CALLS = (
    *CANONICAL_CALLS,
    FunctionCall(name="pause_heartbeats", arguments={"inner_thoughts": "Busy for a while.\nWait.", "minutes": 18}),
    FunctionCall(
        name="conversation_search",
        arguments={"inner_thoughts": "Tab\there é", "query": "x", "page": 109, "request_heartbeat": True},
    ),
    FunctionCall(
        name="archival_memory_search",
        arguments={"inner_thoughts": 'a "q" \\ b', "query": "😀 ü", "page": 0, "request_heartbeat": False},
    ),
)

FRAGMENTS = (
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
    "//",
    "/*",
    "*/",
    "```",
    "0",
    "1",
    "9",
    "-",
    ".",
    "e",
    "true",
    "True",
    "null",
    "None",
    "NaN",
    "\\n",
    "\\u",
    "\\ud83d",
    "\\udc00",
    "\\_",
    "_",
    "a",
    "ü",
    '"page": ',
    '"minutes": 3',
    '"request_heartbeat": true',
    '"extra": 1',
    "function",
    "params",
    "name",
    "arguments",
)


def layouts(call: FunctionCall) -> list[str]:
    obj = {"function": call.name, "params": call.arguments}
    compact = json.dumps(obj, ensure_ascii=False)
    return [
        compact,
        json.dumps(obj, indent=2),
        compact.replace('"', "'"),  # single quotes (values have no apostrophes... or get escaped below)
        "```json\n" + compact + "\n```",
    ]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text) + 1)
        op = rng.randrange(6)
        if op == 0 and text:  # delete a character
            text = text[:i] + text[i + 1 :]
        elif op == 1:  # insert a fragment
            text = text[:i] + rng.choice(FRAGMENTS) + text[i:]
        elif op == 2 and text:  # replace a character
            text = text[:i] + rng.choice(FRAGMENTS) + text[i + 1 :]
        elif op == 3:  # cut the output off
            text = text[: max(i, 1)]
        elif op == 4 and len(text) > 2:  # swap two neighbours
            i = min(i, len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        else:  # duplicate a span
            j = min(len(text), i + rng.randint(1, 12))
            text = text[:j] + text[i:j] + text[j:]
    return text


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "_": "_"}


def read_escapes(text: str) -> str:
    """``text`` with every JSON (and single-quote, and ``\\_``) escape read as its character."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _ESCAPES[code]

    out = re.sub(r"\\(u[0-9a-fA-F]{4}|[\"\\/'bfnrt_])", one, text)
    return out.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def unsupported(call: FunctionCall, text: str, repairs: Sequence[str]) -> str | None:
    """Why ``call`` is not what ``text`` says, or None when the text supports every part of it."""
    written = read_escapes(text)
    try:
        json.dumps(call.arguments, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "the call does not encode as UTF-8"
    if call.name.lower() not in written.lower().replace(" ", "_").replace("-", "_"):
        return f"function {call.name!r} is not in the text"
    for key, value in call.arguments.items():
        defaulted = key == "request_heartbeat" and value is False and "defaulted_request_heartbeat" in repairs
        if defaulted:
            continue
        if key not in written and not (key == "inner_thoughts" and any(a in written for a in THOUGHTS_ALIASES)):
            return f"key {key!r} is not in the text"
        # Literals and numbers are read outside strings, where a backslash is no escape (`:\true` is true).
        problem = _value_unsupported(value, written if isinstance(value, str) else f"{written}\n{text}")
        if problem:
            return f"{key}: {problem}"
    return None


def _value_unsupported(value: Any, written: str) -> str | None:
    if isinstance(value, bool):
        return None if re.search(("true" if value else "false"), written, re.IGNORECASE) else f"{value} is not in the text"
    if value is None:
        return None if re.search(r"null|None", written) else "null is not in the text"
    if isinstance(value, (int, float)):
        numbers = {float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])", written)}
        return None if float(value) in numbers or value != value else f"the number {value} is not in the text"
    if isinstance(value, str):
        return None if value in written else f"{value[:30]!r} is not in the text"
    if isinstance(value, list):
        return next((p for p in (_value_unsupported(v, written) for v in value) if p), None)
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in written:
                return f"key {k!r} is not in the text"
            problem = _value_unsupported(v, written)
            if problem:
                return problem
    return None


@dataclass
class FuzzResult:
    inputs: int = 0
    calls: int = 0
    refused: int = 0
    wrong: list[tuple[str, str]] = field(default_factory=list)  # (text, why)
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (text, exception)


def fuzz(functions: Sequence[FunctionSchema], n: int, seed: int) -> FuzzResult:
    rng = random.Random(seed)
    sources = [text for call in BASE_CALLS for text in layouts(call)]
    result = FuzzResult()
    for _ in range(n):
        text = mutate(rng.choice(sources), rng)
        result.inputs += 1
        try:
            parsed = parse_call(text, functions)
        except ParseError:
            result.refused += 1
            continue
        except Exception as exc:
            result.crashes.append((text, f"{type(exc).__name__}: {exc}"))
            continue
        result.calls += 1
        why = unsupported(parsed.call, text, parsed.repairs)
        if why:
            result.wrong.append((text, why))
    return result


#: The support check's own cases: (call, text, does the text support the call?).
FUZZ_CASES = [
    (
        FunctionCall(name="pause_heartbeats", arguments={"minutes": 8}),
        '{"function": "pause_heartbeats", "params": {"minutes" 18}}',
        False,
    ),
    (
        FunctionCall(name="pause_heartbeats", arguments={"minutes": 18}),
        '{"function": "pause_heartbeats", "params": {"minutes": 18}}',
        True,
    ),
    (
        FunctionCall(name="send_message", arguments={"message": "hi", "extra": 1}),
        '{"function": "send_message", "params": {"message": "hi"}}',
        False,
    ),
    (
        FunctionCall(name="send_message", arguments={"message": "a\nb"}),
        '{"function": "send\\_message", "params": {"message": "a\\nb"}}',
        True,
    ),
    (
        FunctionCall(name="send_message", arguments={"message": "ab"}),
        '{"function": "send_message", "params": {"message": "a b"}}',
        False,
    ),
    (
        FunctionCall(name="send_message", arguments={"message": "\ud800"}),
        '{"function": "send_message", "params": {"message": "\\ud800"}}',
        False,
    ),
    (
        FunctionCall(name="conversation_search", arguments={"query": "x", "request_heartbeat": True}),
        '{"function": "conversation_search", "params": {"query": "x", "request_heartbeat":\\true}}',
        True,
    ),
]
