"""The call constraint: exactly one call to one of the agent's functions, as GBNF and as JSON schema.

Both describe the same language, ``{"function": NAME, "params": {"inner_thoughts": "...", ...}}`` (keys as
``CallShape`` names them), built from the function schemas:

- ``params`` keys in a fixed order: ``inner_thoughts`` first (the model thinks before it acts), then the
  function's required parameters, then its optional ones, then ``request_heartbeat`` last. Both
  ``inner_thoughts`` and ``request_heartbeat`` (where the function takes it) are always present: under a
  grammar the model must decide whether to chain (MemGPT's grammars left it out, so models never could).
- Every string is bounded by ``CallShape.max_string_chars`` (or the parameter's own smaller
  ``maxLength``), integers by their range: the grammar always admits a closing brace within
  ``max_call_chars`` characters, so a turn given that many tokens can never be cut off mid-call.
  (Every token adds at least one character of ASCII text; ``shape_for_budget`` picks the bound for a
  token budget.)
- The GBNF has the layout ``json.dumps`` prints, no free whitespace: ``{"function": "`` and
  ``", "params": {"inner_thoughts": "`` are forced runs the sampler does not have to choose.
- A reasoning model's shape (``CallShape.thinks``) puts a free-text thinking section before the call:
  ``think? call`` (``think ::= think_open text think_close``), the text at most ``max_think_chars``
  characters without ``<`` (so it cannot write the closing tag early or forge another). Where the prompt
  opened the block itself (``think_open`` empty), ``text think_close`` is not optional. The JSON schema
  cannot say this: a backend that takes only JSON schema thinks unconstrained first (the agent's
  two-request fallback) and gets the schema for the call alone. ``max_call_chars`` counts the thinking,
  so ``shape_for_budget`` bounds it with the call.

Pure and deterministic: no I/O, and the same functions give the same text (core caches it per set).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from memgpt.contract.types import CallShape, Constraint, FunctionSchema
from memgpt.errors import GrammarError
from memgpt.grammar.gbnf import (
    DEFAULT_MAX_ITEMS,
    MAX_FRAC_DIGITS,
    MAX_INT_DIGITS,
    GbnfBuilder,
    gbnf_literal,
    int_bounds,
    schema_errors_as_grammar_errors,
    with_inferred_type,
)

HEARTBEAT_KEY = "request_heartbeat"
MAP_KEY_CHARS = 64  # the longest key of a free-form object (a map) a call may hold
#: What a value of any type is bounded to inside a call: a scalar (a nested value could not be bounded
#: without shrinking every other string of the call).
_FREE_VALUE = ["string", "number", "boolean", "null"]
_ANNOTATIONS = {"description", "title", "default", "examples", "$schema", "$comment", "deprecated", "readOnly", "writeOnly"}


@schema_errors_as_grammar_errors
def build_call_constraint(functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> Constraint:
    """GBNF and JSON schema forcing one call to one of ``functions``; ``GrammarError`` if a schema uses a
    feature the GBNF emitter does not support, or the function list is empty or has duplicates."""
    return Constraint(gbnf=call_gbnf(functions, shape), json_schema=call_json_schema(functions, shape))


def _checked(functions: Sequence[FunctionSchema]) -> list[FunctionSchema]:
    functions = list(functions)
    if not functions:
        raise GrammarError("no functions to build a call grammar from; give the agent at least one function")
    seen: set[str] = set()
    for function in functions:
        if function.name in seen:
            raise GrammarError(f"function {function.name!r} is listed twice; function names must be unique")
        seen.add(function.name)
        if function.parameters.get("type", "object") != "object":
            raise GrammarError(f"function {function.name!r}: parameters must be a JSON schema of type object")
    return functions


def _kinds(schema: dict[str, Any]) -> list[Any]:
    """The schema's ``type`` as a list (a single type, a list of types, or none)."""
    kind = schema.get("type")
    return list(kind) if isinstance(kind, list) else [kind]


def _bounded(schema: Any, bound: int) -> Any:
    """A copy of ``schema`` without annotations, its type made explicit where its keywords imply one, every
    free string capped at ``bound`` characters, every object with declared properties closed
    (``additionalProperties: false`` unless it says otherwise) and every map (an object without declared
    properties, or one that admits more keys) bounded: at most ``DEFAULT_MAX_ITEMS`` keys of at most
    ``MAP_KEY_CHARS`` characters, values of any type narrowed to scalars."""
    if schema is True or (isinstance(schema, dict) and not set(schema) - _ANNOTATIONS):
        return {"type": list(_FREE_VALUE), "maxLength": bound}
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    out = with_inferred_type(out, "params")
    kinds = _kinds(out)
    if "string" in kinds and "enum" not in out and "const" not in out and out.get("format") != "date":
        out["maxLength"] = min(int(out.get("maxLength", bound)), bound)
    if "properties" in out:
        out["properties"] = {k: _bounded(v, bound) for k, v in out["properties"].items()}
    if "object" in kinds:
        extra = out.get("additionalProperties", not out.get("properties"))
        if extra is False:
            out["additionalProperties"] = False
        else:
            out["additionalProperties"] = _bounded(extra, bound)
            names: dict[str, Any] = out["propertyNames"] if isinstance(out.get("propertyNames"), dict) else {}
            key_chars = min(int(names.get("maxLength", MAP_KEY_CHARS)), MAP_KEY_CHARS, bound)
            out["propertyNames"] = {**names, "type": "string", "maxLength": key_chars}
            if not out.get("properties"):
                out["maxProperties"] = min(int(out.get("maxProperties", DEFAULT_MAX_ITEMS)), DEFAULT_MAX_ITEMS)
    if isinstance(out.get("items"), dict):
        out["items"] = _bounded(out["items"], bound)
    for key in ("anyOf", "oneOf"):
        if key in out:
            out[key] = [_bounded(option, bound) for option in out[key]]
    return out


def params_schema(function: FunctionSchema, shape: CallShape = CallShape()) -> dict[str, Any]:
    """The JSON schema of one function's ``params`` as the constraint lays them out (see module doc)."""
    bound = shape.max_string_chars
    properties = function.properties
    declared_required = [k for k in function.required if k in properties]
    thoughts = shape.inner_thoughts_key
    first: dict[str, Any] = {}
    if thoughts is not None:
        # Not empty (by default): the model thinks before every act, and the thought steers the call after it.
        first[thoughts] = {"type": "string", "minLength": min(shape.min_inner_thoughts_chars, bound), "maxLength": bound}
    middle = [k for k in declared_required if k not in (thoughts, HEARTBEAT_KEY)]
    optional = [k for k in properties if k not in declared_required and k not in (thoughts, HEARTBEAT_KEY)]
    ordered: dict[str, Any] = dict(first)
    for key in middle + optional:
        ordered[key] = _bounded(properties[key], bound)
    required = list(first) + middle
    if HEARTBEAT_KEY in properties:
        ordered[HEARTBEAT_KEY] = {"type": "boolean"}
        required.append(HEARTBEAT_KEY)
    return {"type": "object", "properties": ordered, "required": required, "additionalProperties": False}


def _call_schema(function: FunctionSchema, shape: CallShape) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            shape.function_key: {"type": "string", "const": function.name},
            shape.params_key: params_schema(function, shape),
        },
        "required": [shape.function_key, shape.params_key],
        "additionalProperties": False,
    }


@schema_errors_as_grammar_errors
def call_json_schema(functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> dict[str, Any]:
    """A JSON schema matching exactly one call to one of ``functions`` (for LM Studio, vLLM, llama-server)."""
    options = [_call_schema(f, shape) for f in _checked(functions)]
    return options[0] if len(options) == 1 else {"anyOf": options}


@schema_errors_as_grammar_errors
def call_gbnf(functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> str:
    """A GBNF grammar matching exactly one call to one of ``functions``, in ``json.dumps`` layout."""
    builder = GbnfBuilder()
    calls = []
    for index, function in enumerate(_checked(functions)):
        params = builder.value(params_schema(function, shape), f"params-{function.name}")
        # The opening `{"function": "` is shared by every call and stays in root; each alternative starts at
        # the name (without its opening quote) and carries the literal up to its params.
        head = json.dumps(function.name, ensure_ascii=False)[1:] + ", " + json.dumps(shape.params_key) + ": "
        calls.append(builder.add(f"call-{index}-{function.name}", f"{gbnf_literal(head)} {params}"))
    opening = "{" + json.dumps(shape.function_key) + ': "'
    call = f'{gbnf_literal(opening)} ({" | ".join(calls)}) "}}"'
    if not shape.thinks:
        return builder.render(call)
    text = f"[^<]{{0,{shape.max_think_chars}}}"
    body = f"{text} {gbnf_literal(shape.think_close)}"
    if shape.think_open:  # the model may think first; the prompt did not open the block
        return builder.render(f"{builder.add('think', f'{gbnf_literal(shape.think_open)} {body}')}? {call}")
    return builder.render(f"{builder.add('think', body)} {call}")


def think_chars(shape: CallShape) -> int:
    """The most characters a thinking section takes before the call (0 for a model that does not think)."""
    if not shape.thinks:
        return 0
    return len(shape.think_open) + shape.max_think_chars + len(shape.think_close)


# ---- how long can a call get ----


def _max_chars(schema: Any) -> int:
    """The most characters a value matching ``schema`` (as ``_bounded`` leaves it) takes in our layout,
    counting one character per string character."""
    if not isinstance(schema, dict):
        return 0
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return max(_max_chars(option) for option in schema[key])
    if "const" in schema:
        return len(json.dumps(schema["const"], ensure_ascii=False))
    if "enum" in schema:
        return max(len(json.dumps(v, ensure_ascii=False)) for v in schema["enum"])
    kinds = _kinds(schema)
    sizes = []
    for kind in kinds:
        if kind == "string":
            sizes.append(12 if schema.get("format") == "date" else 2 + int(schema.get("maxLength", 10**9)))
        elif kind == "integer":
            low, high = int_bounds(schema, "value")
            cap = 10**MAX_INT_DIGITS - 1
            sizes.append(max(len(str(low if low is not None else -cap)), len(str(high if high is not None else cap))))
        elif kind == "number":
            sizes.append(1 + MAX_INT_DIGITS + 1 + MAX_FRAC_DIGITS + 5)
        elif kind == "boolean":
            sizes.append(5)
        elif kind == "null":
            sizes.append(4)
        elif kind == "array":
            n = int(schema.get("maxItems", DEFAULT_MAX_ITEMS))
            sizes.append(2 + n * _max_chars(schema.get("items")) + max(n - 1, 0) * 2)
        elif kind == "object":
            props = schema.get("properties", {})
            keys = sum(len(json.dumps(k, ensure_ascii=False)) + 2 for k in props)
            size = 2 + keys + sum(_max_chars(v) for v in props.values()) + max(len(props) - 1, 0) * 2
            extra = schema.get("additionalProperties", True)
            if extra is not False:  # a map's keys (as _bounded leaves them: bounded in number and length)
                n = int(schema.get("maxProperties", DEFAULT_MAX_ITEMS))
                key_chars = 2 + int(schema.get("propertyNames", {}).get("maxLength", 10**9))
                size += n * (key_chars + 2 + _max_chars(extra)) + n * 2
            sizes.append(size)
    return max(sizes, default=0)


@schema_errors_as_grammar_errors
def max_call_chars(functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> int:
    """The longest call the constraint admits, in characters (one per string character), with the thinking
    section before it where the shape has one."""
    return think_chars(shape) + max(_max_chars(_call_schema(f, shape)) for f in _checked(functions))


@schema_errors_as_grammar_errors
def shape_for_budget(functions: Sequence[FunctionSchema], max_tokens: int, shape: CallShape = CallShape()) -> CallShape:
    """``shape`` with ``max_string_chars`` lowered (never raised) until the longest call fits in
    ``max_tokens`` tokens, at one character per token; ``GrammarError`` when even one-character strings
    do not fit. A thinking section gets at most a third of the budget, and none when the call needs it all."""
    if shape.thinks:
        frame = len(shape.think_open) + len(shape.think_close)
        room = max(max_tokens // 3 - frame, 0)
        thinking = shape.model_copy(update={"max_think_chars": min(shape.max_think_chars, room)})
        try:
            return _strings_for_budget(functions, max_tokens, thinking)
        except GrammarError:  # the call needs the whole budget: the model may only close the block
            return _strings_for_budget(functions, max_tokens, shape.model_copy(update={"max_think_chars": 0}))
    return _strings_for_budget(functions, max_tokens, shape)


def _strings_for_budget(functions: Sequence[FunctionSchema], max_tokens: int, shape: CallShape) -> CallShape:
    if max_call_chars(functions, shape) <= max_tokens:
        return shape
    low, high = 1, shape.max_string_chars
    if max_call_chars(functions, shape.model_copy(update={"max_string_chars": low})) > max_tokens:
        raise GrammarError(f"no call to these functions fits in {max_tokens} tokens; raise the turn's max_tokens")
    while low < high:  # the largest bound that fits
        mid = (low + high + 1) // 2
        if max_call_chars(functions, shape.model_copy(update={"max_string_chars": mid})) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return shape.model_copy(update={"max_string_chars": low})
