"""Model text → the JSON value it holds: steps 1-5 of ``memgpt.parsing._call`` (see there).

The value is found, cut out of prose and fences, closed when the output stopped early, or repaired by
``json-repair``, and every one of those is named; nothing here ever changes what the model wrote (a
repair that would is refused with a ``ParseError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memgpt.errors import ParseError

MAX_CANDIDATES = 64  # '{' positions tried when looking for the object in prose
# json-repair is a heuristic with superlinear corners (a run of '{', a long single-quoted string took 30 s
# and more); broken text beyond these bounds is refused with a ParseError instead of repaired. Valid JSON
# of any size is still read (the standard decoder is linear).
MAX_REPAIR_CHARS = 32_768
MAX_DEPTH = 64  # nesting of a broken object we try to close or repair; a call nests three or four levels
_DECODER = json.JSONDecoder(strict=False)  # raw control characters inside strings are the model's text, kept
_ESCAPED_UNDERSCORE = re.compile(r"(?<!\\)((?:\\\\)*)\\_")  # an odd run of backslashes before '_'


def read_json(text: str, repairs: list[str], looks_like_call: Callable[[dict[str, Any]], bool]) -> tuple[Any, str]:
    """The JSON value ``text`` holds and the text after it; appends the name of every repair to ``repairs``."""
    raw = text
    if not text.strip():
        raise ParseError("the output is empty; expected one JSON function call", raw=raw)
    if "\\_" in text:
        # Markdown-style `send\_message`: `\_` is no JSON escape, so no valid text means anything else.
        unescaped = _ESCAPED_UNDERSCORE.sub(r"\1_", text)
        if unescaped != text:
            repairs.append("escaped_underscores")
            text = unescaped
    stripped = text.strip()
    try:
        value, end = _DECODER.raw_decode(stripped)
        if end == len(stripped) and isinstance(value, (dict, list)):
            return value, ""
    except ValueError:
        pass
    except RecursionError:
        raise ParseError("the output nests too deeply to be a function call", raw=raw) from None

    found = _first_object(text, looks_like_call)
    start = _call_start(text)
    # A broken object that opens before the first decodable one is the call (the decodable one is a piece
    # of it, such as its params), unless that decodable one is a call itself.
    if found is not None and (found[3] or start is None or start >= found[1]):
        return _extracted(text, found, repairs)
    if start is None:
        raise ParseError(
            'no JSON object in the output; expected one function call such as {"function": "send_message", "params": {...}}',
            raw=raw,
        )
    before, source = text[:start], text[start:]
    local: list[str] = []
    if "```" in before:
        local.append("code_fence")
        before = before[: before.rfind("```")]
        source = re.sub(r"\s*```\s*$", "", source)
    if before.strip():
        local.append("surrounding_text")
    depth = _scan(source).depth
    if depth > MAX_DEPTH:
        raise ParseError(
            f"the output nests {depth} levels deep (a call needs a few; limit {MAX_DEPTH}); reply with one JSON function call",
            raw=raw,
        )
    value = _close_truncated(source, local, raw=raw)
    if value is None:
        if len(source) > MAX_REPAIR_CHARS:
            raise ParseError(
                f"the output is not valid JSON, and at {len(source)} characters it is too long to repair "
                f"(limit {MAX_REPAIR_CHARS}); reply with one JSON function call",
                raw=raw,
            )
        value = _json_repair(source, local, raw=raw)
    repairs += local
    return value, ""


def _extracted(text: str, found: tuple[Any, int, int, bool], repairs: list[str]) -> tuple[Any, str]:
    """The object ``found`` in ``text``, naming what had to be cut away around it."""
    value, start, end, _ = found
    before, after = text[:start], text[end:]
    if "```" in before:
        repairs.append("code_fence")
        before = before[: before.rfind("```")]
        after = re.sub(r"^\s*```", "", after, count=1)
    if before.strip():
        repairs.append("surrounding_text")
    rest = after.strip()
    if rest:
        repairs.append("concatenated_objects" if rest.startswith("{") else "surrounding_text")
    return value, rest


def _first_object(text: str, looks_like_call: Callable[[dict[str, Any]], bool]) -> tuple[Any, int, int, bool] | None:
    """The first decodable JSON object in ``text`` that looks like a call (or else the first object), with
    where it starts and ends and whether it looks like a call."""
    first: tuple[Any, int, int, bool] | None = None
    for tried, match in enumerate(re.finditer(r"\{", text)):
        if tried >= MAX_CANDIDATES:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            if looks_like_call(value):
                return value, match.start(), end, True
            first = first or (value, match.start(), end, False)
    return first


def _call_start(text: str) -> int | None:
    """Where a (possibly broken) call object starts: the first '{' followed by a key."""
    match = re.search(r"\{\s*['\"A-Za-z_]", text)
    if match:
        return match.start()
    brace = text.find("{")
    return brace if brace >= 0 else None


def _close_truncated(text: str, repairs: list[str], *, raw: str) -> Any | None:
    """Close an object the model stopped writing: a string left open, then the open braces/brackets."""
    stack: list[str] = []
    in_string = escaped = False
    escapes: set[int] = set()  # where each escape sequence starts
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                escapes.add(i)
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return None  # balanced yet undecodable: not a truncation, leave it to json-repair
    if not stack:
        return None
    body = text if in_string else text.rstrip()
    local: list[str] = []
    tail = re.search(r"[-+.\w]+$", body[-64:]) if not in_string else None  # the tail only: linear
    if tail and tail.group() not in ("true", "false", "null"):
        # A number (or a literal) at the very end may be cut short: 10 of 100 is another value, not less of it.
        raise ParseError(f"the output stops in the middle of a value ({tail.group()!r}); it was probably cut off", raw=raw)
    if in_string:
        # Drop what is not a whole character yet: a lone backslash, a short \u escape, or the first half of a
        # surrogate pair whose second half was never written.
        for _ in range(2):
            partial = re.search(r"\\(u[dD][89abAB][0-9a-fA-F]{2}|u[0-9a-fA-F]{0,3})?$", body)
            if partial is None or partial.start() not in escapes:
                break
            body = body[: partial.start()]
        body += '"'
        local.append("closed_string")
    body += "".join(reversed(stack))
    local.append("closed_braces")
    try:
        value = _DECODER.decode(body)
    except (ValueError, RecursionError):
        return None
    repairs += local
    return value


def _json_repair(source: str, repairs: list[str], *, raw: str) -> Any:
    import json_repair

    try:
        value = json_repair.repair_json(source, return_objects=True, skip_json_loads=True)
    except Exception:  # a third-party heuristic: whatever it raises means "could not repair"
        value = None
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, dict)), None)
    if not isinstance(value, dict) or not value:
        raise ParseError("the output is not valid JSON and could not be repaired; reply with one JSON function call", raw=raw)
    value = _joined_surrogates(value)
    try:
        problem = _changed_content(value, source)
    except RecursionError:
        problem = "it nests too deeply to check"
    if problem:
        raise ParseError(
            f"the output is not valid JSON, and repairing it would change its text ({problem}); reply with one JSON function call",
            raw=raw,
        )
    repairs.append("json_repair")
    return value


def _joined_surrogates(value: Any) -> Any:
    """json-repair decodes ``\\ud83d\\ude00`` as two lone surrogates; join pairs into the character meant."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, dict):
        return {_joined_surrogates(k): _joined_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_joined_surrogates(v) for v in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _alnum(text: str) -> int:
    return sum(1 for c in text if c.isalnum())


def _content_alnum(value: Any) -> int:
    """Letters and digits of what ``value`` holds (keys, strings, numbers, literals), not of its JSON text,
    where every escape (``\\n``) would add a letter."""
    if isinstance(value, str):
        return _alnum(value)
    if isinstance(value, dict):
        return sum(_alnum(k) + _content_alnum(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_content_alnum(v) for v in value)
    return _alnum(json.dumps(value))  # true, false, null, a number


_ESCAPED = {'"': '"', "\\": "\\", "/": "/", "'": "'", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def _unescaped(text: str) -> str:
    """``text`` with its JSON (and single-quote) escapes read as the characters they stand for."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _ESCAPED[code]

    out = re.sub(r"\\(u[0-9a-fA-F]{4}|[\"\\/'bfnrt])", one, text)
    return out.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _changed_content(value: Any, source: str) -> str | None:
    """Why a repaired value does not faithfully hold what ``source`` says, or None when it does.

    Checked on values, never on escaped text: every string must be in the source as written, every number
    must be a number the source writes, and no letter or digit the source holds inside the object (outside
    comments) may go missing.
    """
    scan = _scan(source)
    region = _unescaped(scan.text)
    written = _unescaped(source)
    for s in _strings(value):
        if s not in written:
            return f"{s[:40]!r} is not in the output as written"
    numbers = {float(n) for n in _NUMBER.findall(scan.text)}
    for n in _numbers(value):
        if float(n) not in numbers:
            return f"the number {n} is not in the output as written"
    if _content_alnum(value) < _alnum(region):
        return "some of the text would be dropped"
    return None


@dataclass(frozen=True)
class _Scanned:
    text: str  # the first object (up to its closing brace, or all of it), comments left out
    depth: int  # how deep it nests


def _scan(text: str) -> _Scanned:
    """One linear pass over ``text``: its first object without ``//`` and ``/* */`` comments, and its
    deepest nesting, treating both quote kinds as string delimiters."""
    out: list[str] = []
    depth = deepest = 0
    quote, escaped = "", False
    i, n, kept = 0, len(text), 0
    while i < n:
        char = text[i]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "/" and (text.startswith("//", i) or text.startswith("/*", i)):
            out.append(text[kept:i])
            end = text.find("\n", i) if text.startswith("//", i) else text.find("*/", i + 2)
            i = n if end < 0 else (end if text[end] == "\n" else end + 2)
            kept = i
            continue
        elif char in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}]":
            depth -= 1
            if depth <= 0:
                out.append(text[kept : i + 1])
                return _Scanned("".join(out), deepest)
        i += 1
    out.append(text[kept:])
    return _Scanned("".join(out), deepest)
