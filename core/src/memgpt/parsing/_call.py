"""Model output → one validated function call, repairing what local models get wrong without changing what
they meant.

``parse_call`` tries, in order, and names every repair it applies in ``ParsedCall.repairs``:

1. the text (whitespace aside) is exactly one JSON object: no repair;
2. ``code_fence`` / ``surrounding_text``: the first balanced object inside markdown fences or prose;
3. ``concatenated_objects``: another object follows the first; the first is the call, ``rest`` keeps the
   remainder (the agent may run it as the next step or report it);
4. ``closed_string`` / ``closed_braces``: the output stopped before its closing quote or braces (a partial
   escape at the cut is dropped: it is not a character yet); a number at the cut is refused, since it may
   have been cut short;
5. ``json_repair``: single quotes, trailing commas, Python literals, unquoted keys, comments, through the
   ``json-repair`` library, accepted only when every string in its result is in the text as written and
   nothing alphanumeric went missing (MemGPT's hand-written repairs silently dropped non-ASCII text and
   cut strings at escaped quotes);
6. the layouts local models use instead of ours: ``key_aliases`` (``name``/``arguments``, ``parameters``,
   ``function_call``, ``tool_calls``, OpenAI's ``{"function": {"name", "arguments"}}``...),
   ``params_string`` (arguments as a JSON string), ``flattened_params`` (parameters next to the function
   name), ``inner_thoughts_moved`` (thoughts outside the params), ``unwrapped_list``;
7. validation against the function's JSON schema (``jsonschema``): an unknown function raises
   ``UnknownFunctionError`` listing the valid names; missing, extra or wrongly typed parameters raise
   ``ArgumentError`` saying which. Lenient only where the meaning is certain: ``function_name_case``,
   ``coerced_types`` (``"true"`` → true, ``"3"`` → 3), ``defaulted_request_heartbeat`` (absent = false).
   A missing ``inner_thoughts`` is accepted (nothing is invented in its place).

Before step 1, a leading thinking block (``<think>…</think>``, or the shape's own delimiters; the opening
tag may be missing where the prompt opened the block) is taken off: the call is read from the text after it,
and the thinking becomes ``inner_thoughts`` when the call has none (``thinking_as_inner_thoughts``). With
nothing after the block, the call is looked for inside it: ``call_in_think`` (closed) or ``unclosed_think``
(the model never closed it). ``ParsedCall.thinking`` keeps the text.

Steps 1-5 (text → JSON value) live in ``memgpt.parsing._json_text``; 6 and 7 (JSON → call) here. Pure (no I/O),
and it raises nothing but ``ParseError`` subclasses; ``ParseError.raw`` keeps the text.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memgpt.contract.types import CallShape, FunctionCall, FunctionSchema
from memgpt.errors import ArgumentError, ParseError, UnknownFunctionError
from memgpt.parsing._json_text import read_json

log = logging.getLogger("memgpt.parse")

HEARTBEAT_KEY = "request_heartbeat"
FUNCTION_ALIASES = ("name", "function_name", "tool", "tool_name", "action", "function")
PARAMS_ALIASES = ("arguments", "parameters", "params", "args", "input", "tool_input", "action_input", "kwargs")
THOUGHTS_ALIASES = (
    "inner_thoughts",
    "inner_monologue",
    "inner_thought",
    "thoughts",
    "thought",
    "thinking",
    "reasoning",
    "monologue",
)
WRAPPER_KEYS = ("function_call", "tool_call", "call")
IGNORED_KEYS = ("type", "id", "index")

_DECODER = json.JSONDecoder(strict=False)  # raw control characters inside strings are the model's text, kept


@dataclass(frozen=True)
class ParsedCall:
    """The call, the repairs that were needed to read it, and any text after the first object."""

    call: FunctionCall
    repairs: tuple[str, ...] = ()
    rest: str = ""
    thinking: str = ""


#: Thinking delimiters read whatever the wrapper: what DeepSeek-R1, Qwen3, QwQ and their distills write.
THINK_TAGS = (("<think>", "</think>"),)


def split_thinking(text: str, shape: CallShape = CallShape()) -> tuple[str, str, bool] | None:
    """A thinking block at the start of ``text``: ``(thinking, text after it, closed)``, the thinking without
    its delimiters and outer whitespace; ``None`` when ``text`` does not start with one. A closing tag
    without the opening one counts where the prompt opened the block: when text precedes the tag and an
    object follows it."""
    tags = [(shape.think_open.strip(), shape.think_close.strip())] if shape.thinks else []
    body = text.lstrip()
    for opening, closing in [*tags, *THINK_TAGS]:
        if opening and body.startswith(opening):
            inner = body[len(opening) :]
            if closing in inner:
                thinking, after = inner.split(closing, 1)
                return thinking.strip(), after, True
            return inner.strip(), "", False
    for _, closing in [*tags, *THINK_TAGS]:
        at = body.find(closing)
        if at >= 0 and not body.startswith(("{", "[", "`")) and "{" in body[at:]:
            return body[:at].strip(), body[at + len(closing) :], True
    return None


def parse_call(text: str, functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> ParsedCall:
    """Read ``text`` as one call to one of ``functions``; see the module docstring for the steps."""
    if not isinstance(text, str):
        raise ParseError(f"expected the model's text, got {type(text).__name__}", raw=repr(text))
    repairs: list[str] = []
    thinking, body = _after_thinking(text, shape, repairs)
    try:
        value, rest = read_json(body, repairs, _looks_like_call)
    except ParseError as exc:
        if body is text:
            raise
        raise ParseError(str(exc), raw=text) from None  # the raw text is the whole output, thinking included
    _refuse_lone_surrogates(value, text)
    function, params = _normalise(value, shape, functions, repairs, text)
    thoughts = shape.inner_thoughts_key
    if thinking and thoughts is not None and not params.get(thoughts):
        params[thoughts] = thinking
        repairs.append("thinking_as_inner_thoughts")
    params = _validated(function, params, shape, repairs, text)
    if repairs:
        log.debug("parse repairs: %s", ", ".join(dict.fromkeys(repairs)))
    call = FunctionCall(name=function.name, arguments=params)
    return ParsedCall(call, tuple(dict.fromkeys(repairs)), rest, thinking)


def _after_thinking(text: str, shape: CallShape, repairs: list[str]) -> tuple[str, str]:
    """``(thinking, the text to read the call from)``: see the module docstring."""
    split = split_thinking(text, shape)
    if split is None:
        return "", text
    thinking, after, closed = split
    if after.strip():
        return thinking, after
    start = thinking.find("{")
    if start < 0:
        if closed:
            raise ParseError("the output is only thinking: no function call after </think>", raw=text)
        raise ParseError("the output stopped while thinking (no </think>) before any function call", raw=text)
    repairs.append("call_in_think" if closed else "unclosed_think")
    return thinking[:start].strip(), thinking[start:]


def validate_call(call: FunctionCall, functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> FunctionCall:
    """``call`` checked against its function's schema, as ``parse_call`` checks what it reads (with the same
    leniency: ``"3"`` for 3, an absent ``request_heartbeat`` as false): the agent runs this on every call,
    whichever wrapper produced it. Raises ``UnknownFunctionError`` or ``ArgumentError``."""
    raw = _short(call.model_dump())
    function = next((f for f in functions if f.name == call.name), None)
    if function is None:
        valid = ", ".join(f.name for f in functions) or "(none)"
        raise UnknownFunctionError(f"there is no function {call.name!r}; call one of: {valid}", raw=raw)
    try:
        json.dumps(call.arguments, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ArgumentError(f"{call.name}: the arguments hold a lone surrogate, which is not text", raw=raw) from None
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{call.name}: the arguments are not JSON values ({exc})", raw=raw) from None
    params = _validated(function, dict(call.arguments), shape, [], raw)
    return call if params == call.arguments else FunctionCall(name=function.name, arguments=params)


def cut_off(text: str, shape: CallShape = CallShape()) -> bool:
    """Whether the call in ``text`` stops before its end (a string or an object left open, or a thinking
    block never closed), which the parser would close: the agent asks again when the backend says the
    token limit stopped it."""
    split = split_thinking(text, shape)
    if split is not None:
        if not split[2]:
            return True
        text = split[1]
    repairs: list[str] = []
    try:
        read_json(text, repairs, _looks_like_call)
    except ParseError:
        return True
    return "closed_string" in repairs or "closed_braces" in repairs


def _refuse_lone_surrogates(value: Any, raw: str) -> None:
    """Half of a UTF-16 pair is no character: it would fail later, when the call is stored or printed."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise ParseError(
            f"the output holds a lone surrogate ({ascii(bad)[1:-1]}), half of a character; write the character itself",
            raw=raw,
        ) from None
    except (ValueError, RecursionError):
        pass  # not JSON text (NaN) or too deep: the steps below say so


# ---- 6: the layouts local models use → (name, params) ----


def _looks_like_call(value: dict[str, Any]) -> bool:
    return any(k in value for k in (*FUNCTION_ALIASES, *WRAPPER_KEYS, "tool_calls"))


def _normalise(
    value: Any, shape: CallShape, functions: Sequence[FunctionSchema], repairs: list[str], raw: str
) -> tuple[FunctionSchema, dict[str, Any]]:
    if isinstance(value, list):
        first = next((v for v in value if isinstance(v, dict)), None)
        if first is None:
            raise ParseError("the output is a JSON list without a call object in it", raw=raw)
        repairs.append("unwrapped_list")
        value = first
    if not isinstance(value, dict):
        raise ParseError('the output is JSON but not an object; expected {"function": ..., "params": {...}}', raw=raw)
    obj = dict(value)
    outer_thoughts = {k: obj.pop(k) for k in THOUGHTS_ALIASES if k in obj}

    calls = obj.get("tool_calls")
    if isinstance(calls, list) and calls and isinstance(calls[0], dict):
        repairs.append("key_aliases")
        obj = {**{k: v for k, v in obj.items() if k != "tool_calls"}, **calls[0]}
    for wrapper in WRAPPER_KEYS:
        if isinstance(obj.get(wrapper), dict):
            repairs.append("key_aliases")
            inner = obj.pop(wrapper)
            obj = {**obj, **inner}
            break
    # {"function": {...}}: OpenAI's tool layout, or the model repeating our prefill inside it.
    for _ in range(3):
        nested = obj.get(shape.function_key)
        if not isinstance(nested, dict):
            break
        repairs.append("key_aliases")
        obj = {**{k: v for k, v in obj.items() if k != shape.function_key}, **nested}
        outer_thoughts.update({k: obj.pop(k) for k in THOUGHTS_ALIASES if k in obj})

    name_key = next((k for k in (shape.function_key, *FUNCTION_ALIASES) if isinstance(obj.get(k), str)), None)
    if name_key is None:
        raise ParseError(
            f'the JSON object names no function; expected {{"{shape.function_key}": NAME, "{shape.params_key}": {{...}}}}',
            raw=raw,
        )
    if name_key != shape.function_key:
        repairs.append("key_aliases")
    name = obj.pop(name_key)
    function = _find_function(name, functions, repairs, raw)
    name = function.name

    # Our own key whatever it holds (a wrong type is the model's error to hear about); an alias only when it
    # holds what arguments look like, since a function may have a parameter called "input" or "args".
    params_key = shape.params_key if shape.params_key in obj else None
    params_key = params_key or next(
        (k for k in PARAMS_ALIASES if k in obj and (isinstance(obj[k], (dict, str)) or obj[k] is None)), None
    )
    params: Any = {}
    if params_key is not None:
        if params_key != shape.params_key:
            repairs.append("key_aliases")
        params = obj.pop(params_key)
        if params is None:
            params = {}
        if isinstance(params, str):
            try:
                params = _DECODER.decode(params.strip() or "{}")
            except (ValueError, RecursionError):
                raise ArgumentError(
                    f"{name}: the {params_key} are a string that is not a JSON object: {params[:80]!r}", raw=raw
                ) from None
            repairs.append("params_string")
        if not isinstance(params, dict):
            raise ArgumentError(f"{name}: {shape.params_key} must be a JSON object, got {type(params).__name__}", raw=raw)
    params = dict(params)

    for key in IGNORED_KEYS:
        obj.pop(key, None)
    if obj:  # keys beside the name: parameters written at the top level, or something we cannot place
        known = set(function.properties)
        strays = [k for k in obj if k not in known or k in params]
        if strays:
            raise ArgumentError(
                f"{name}: unexpected key(s) {', '.join(map(repr, strays))} next to {shape.function_key!r}; "
                f"put every argument inside {shape.params_key!r}",
                raw=raw,
            )
        params.update(obj)
        repairs.append("flattened_params")

    thoughts = shape.inner_thoughts_key
    if thoughts is not None:
        for alias in THOUGHTS_ALIASES:
            if alias != thoughts and alias in params and thoughts not in params and alias not in function.properties:
                params[thoughts] = params.pop(alias)
                repairs.append("key_aliases")
        for text in outer_thoughts.values():
            if thoughts not in params:
                params[thoughts] = text
                repairs.append("inner_thoughts_moved")
            elif params[thoughts] != text:
                raise ArgumentError(
                    f"{name}: two different inner thoughts (in and outside {shape.params_key!r}); give one", raw=raw
                )
    return function, params


# ---- 7: validation ----


def _find_function(name: Any, functions: Sequence[FunctionSchema], repairs: list[str], raw: str) -> FunctionSchema:
    valid = ", ".join(f.name for f in functions) or "(none)"
    if not isinstance(name, str):
        raise ParseError(f"the function name must be a string; valid functions: {valid}", raw=raw)
    by_name = {f.name: f for f in functions}
    if name in by_name:
        return by_name[name]
    folded = [f for f in functions if f.name.lower() == name.strip().lower().replace(" ", "_").replace("-", "_")]
    if len(folded) == 1:
        repairs.append("function_name_case")
        return folded[0]
    raise UnknownFunctionError(f"there is no function {name!r}; call one of: {valid}", raw=raw)


@functools.lru_cache(maxsize=256)
def _validator(parameters_json: str, thoughts: str | None) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(parameters_json)
    schema.setdefault("type", "object")
    schema.setdefault("additionalProperties", False)
    if thoughts is not None:
        schema["required"] = [k for k in schema.get("required", []) if k != thoughts]
        schema.setdefault("properties", {}).setdefault(thoughts, {"type": "string"})
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


_TRUE_FALSE = {"true": True, "false": False}


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` as ``schema``'s type when the conversion cannot change its meaning, else ``value``."""
    kind = schema.get("type")
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in _TRUE_FALSE:
        return _TRUE_FALSE[value.strip().lower()]
    if kind == "integer":
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == "number" and isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*", value):
        return float(value)
    return value


def _validated(
    function: FunctionSchema, params: dict[str, Any], shape: CallShape, repairs: list[str], raw: str
) -> dict[str, Any]:
    properties = function.properties
    for key, value in list(params.items()):
        schema = properties.get(key)
        if isinstance(schema, dict):
            coerced = _coerce(value, schema)
            if coerced is not value:
                params[key] = coerced
                repairs.append("coerced_types")
    if HEARTBEAT_KEY in properties and HEARTBEAT_KEY not in params:
        params[HEARTBEAT_KEY] = False
        repairs.append("defaulted_request_heartbeat")
    validator = _validator(json.dumps(function.parameters, sort_keys=True), shape.inner_thoughts_key)
    try:
        problems = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    except RecursionError:
        raise ArgumentError(f"{function.name}: the arguments nest too deeply", raw=raw) from None
    if problems:
        said = "; ".join(dict.fromkeys(_describe(e, properties) for e in problems))
        raise ArgumentError(f"{function.name}: {said}", raw=raw)
    return params


def _describe(error: Any, properties: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    label = f"parameter {where!r}" if where else "the arguments"
    got = _short(error.instance)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return f"missing required parameter {missing[0]!r}" if missing else error.message
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        valid = ", ".join(error.schema.get("properties", {})) or "none"
        return f"unexpected parameter(s) {', '.join(map(repr, extra))} (valid: {valid})"
    if error.validator == "type":
        return f"{label} must be {error.validator_value}, got {got}"
    if error.validator == "enum":
        return f"{label} must be one of {', '.join(map(repr, error.validator_value))}, got {got}"
    if error.validator in ("maxLength", "minLength"):
        length = len(error.instance) if isinstance(error.instance, str) else "?"
        return f"{label} must be {'at most' if error.validator == 'maxLength' else 'at least'} {error.validator_value} characters, got {length}"
    if error.validator == "format":
        return f"{label} must be a {error.validator_value} (e.g. 2024-05-17 for a date), got {got}"
    return f"{label}: {error.message}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
