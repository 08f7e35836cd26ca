"""The call constraint built from function schemas: GBNF and JSON schema accept exactly the valid calls to
the given functions (typed, bounded, heartbeat where taken), llama.cpp accepts every grammar for every
builtin function set, and what the grammar admits the parser reads back without a repair."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt.contract.types import CallShape, FunctionSchema
from memgpt.errors import GrammarError
from memgpt.grammar.call import build_call_constraint, call_gbnf, max_call_chars, params_schema, shape_for_budget
from memgpt.parsing._call import parse_call
from memgpt.plugins import get_registry
from memgpt.testing.wrapper import sample_functions

SAMPLE = sample_functions()

HOSTILE = [
    FunctionSchema(
        name="sagen_für_später",
        description='Quotes " and \\ backslashes,\nnewlines and ☃ — all in a description.',
        parameters={
            "type": "object",
            "properties": {
                'we"ird\\key': {"type": "string", "maxLength": 5, "description": 'a "quoted" \\ description'},
                "mode": {"type": "string", "enum": ['a"b', "c\\d", "ü☃", "tab\there", "nl\nx", "", "\u2028sep"]},
                "n": {"type": "integer", "minimum": -5, "maximum": 5},
                "ratio": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 3},
                "maybe": {"type": ["string", "null"], "maxLength": 4},
                "nested": {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "integer", "minimum": 0}}},
                "request_heartbeat": {"type": "boolean"},
            },
            "required": ['we"ird\\key', "mode"],
        },
    ),
    FunctionSchema(
        name="日本語_関数",
        description="名前が日本語",
        parameters={"type": "object", "properties": {"メッセージ": {"type": "string"}}, "required": ["メッセージ"]},
    ),
    FunctionSchema(name="no_params", description="", parameters={"type": "object", "properties": {}}),
]


def _registered() -> list[FunctionSchema]:
    return [spec.schema for spec in get_registry().functions.values()]


def function_sets() -> dict[str, list[FunctionSchema]]:
    sets = {"sample-all": SAMPLE, "hostile": HOSTILE, "sample+hostile": SAMPLE + HOSTILE}
    for f in SAMPLE + HOSTILE:
        sets[f"only-{f.name}"] = [f]
    for a, b in itertools.combinations(SAMPLE, 2):
        sets[f"pair-{a.name}-{b.name}"] = [a, b]
    return sets


SETS = function_sets()


def layout(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """``value``'s keys in the grammar's order: declared order, optional keys before the first required
    one moved after it (nested objects too)."""
    props = list(schema.get("properties", {}))
    required = set(schema.get("required", []))
    first = next((k for k in props if k in required), None)
    order = props if first is None else [first, *[k for k in props if k != first]]
    out = {}
    for key in order:
        if key in value:
            sub = schema["properties"][key]
            out[key] = layout(sub, value[key]) if isinstance(value[key], dict) and sub.get("type") == "object" else value[key]
    return out


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values of a (bounded) schema, strings kept short so hypothesis stays fast."""
    if "anyOf" in schema:
        return st.one_of([values(s) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([values({**schema, "type": k}) for k in kind])
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat())
        text = st.text(
            alphabet=st.characters(blacklist_categories=("Cs",)),
            min_size=schema.get("minLength", 0),
            max_size=min(schema.get("maxLength", 20), 20),
        )
        return text
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**15)), schema.get("maximum", 10**15))
    if kind == "number":
        low = schema.get("minimum")
        return st.floats(min_value=low, allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) < 1e15)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(values(schema["items"]), min_size=schema.get("minItems", 0), max_size=schema.get("maxItems", 16))
    if kind == "object":
        props = schema.get("properties", {})
        required = [k for k in props if k in schema.get("required", [])]
        optional = [k for k in props if k not in required]
        return st.fixed_dictionaries(
            {k: values(props[k]) for k in required}, optional={k: values(props[k]) for k in optional}
        ).map(lambda v: layout(schema, v))
    raise AssertionError(f"no strategy for {schema}")


def calls(functions: list[FunctionSchema], shape: CallShape = CallShape()) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(functions).flatmap(
        lambda f: values(params_schema(f, shape)).map(lambda p: {shape.function_key: f.name, shape.params_key: p})
    )


_PATTERNS: dict[str, Any] = {}


def pattern_for(to_regex: Any, name: str) -> Any:
    """The regex of a function set's grammar, compiled once per session."""
    if name not in _PATTERNS:
        _PATTERNS[name] = to_regex(call_gbnf(SETS[name]))
    return _PATTERNS[name]


def ascii_literals(function: FunctionSchema) -> bool:
    """Whether the grammar's fixed text for ``function`` (name, keys, enum values) is ASCII: only then does
    ``json.dumps(..., ensure_ascii=True)``, which escapes those too, stay in the fixed layout."""
    return (function.name + json.dumps(params_schema(function), ensure_ascii=False)).isascii()


@pytest.mark.parametrize("name", sorted(SETS))
def test_llama_cpp_accepts_the_grammar_of_every_function_set(llama_accepts, name: str) -> None:
    llama_accepts(build_call_constraint(SETS[name]).gbnf)


def test_llama_cpp_accepts_the_grammar_of_the_registered_functions(llama_accepts, to_regex) -> None:
    registered = _registered()
    assert {f.name for f in registered} >= {"send_message", "core_memory_append", "archival_memory_search"}
    for subset in [registered, *([f] for f in registered)]:
        grammar = get_registry().grammar("call").build(subset, CallShape())
        llama_accepts(grammar.gbnf)
        assert to_regex(grammar.gbnf)


@pytest.mark.parametrize("name", ["sample-all", "hostile", "sample+hostile"])
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_every_valid_call_matches_both_constraints_and_parses_without_repair(to_regex, name: str, data: st.DataObject) -> None:
    functions = SETS[name]
    call = data.draw(calls(functions))
    constraint = build_call_constraint(functions)
    jsonschema.validate(call, constraint.json_schema)
    function = next(f for f in functions if f.name == call["function"])
    for ascii_only in (False, True) if ascii_literals(function) else (False,):
        text = json.dumps(call, ensure_ascii=ascii_only)
        assert pattern_for(to_regex, name).fullmatch(text), text
    parsed = parse_call(json.dumps(call, ensure_ascii=False), functions)
    assert parsed.repairs == () and parsed.call.name == call["function"] and parsed.call.arguments == call["params"]


def _send(**params: Any) -> dict[str, Any]:
    return {"function": "send_message", "params": {"inner_thoughts": "t", "message": "m", **params}}


def _append(**params: Any) -> dict[str, Any]:
    return {
        "function": "core_memory_append",
        "params": {"inner_thoughts": "t", "name": "human", "content": "c", "request_heartbeat": True, **params},
    }


INVALID = {
    "unknown function": {"function": "launch", "params": {"inner_thoughts": "t"}},
    "missing heartbeat": {"function": "core_memory_append", "params": {"inner_thoughts": "t", "name": "human", "content": "c"}},
    "missing inner thoughts": {"function": "send_message", "params": {"message": "m"}},
    "extra key": _send(extra=1),
    "extra top-level key": {**_send(), "note": "x"},
    "wrong enum": _append(name="user"),
    "heartbeat as string": _append(request_heartbeat="true"),
    "string too long": _send(message="x" * 1201),
    "empty required content": _append(content=""),
    "page out of range": {
        "function": "conversation_search",
        "params": {"inner_thoughts": "t", "query": "q", "page": 1001, "request_heartbeat": False},
    },
    "bad date": {
        "function": "conversation_search_date",
        "params": {"inner_thoughts": "t", "start_date": "2023-02-29", "end_date": "2023-03-01", "request_heartbeat": False},
    },
    "minutes negative": {"function": "pause_heartbeats", "params": {"inner_thoughts": "t", "minutes": -1}},
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_calls_match_neither_constraint(to_regex, case: str) -> None:
    call = INVALID[case]
    assert not pattern_for(to_regex, "sample-all").fullmatch(json.dumps(call, ensure_ascii=False))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            call, build_call_constraint(SAMPLE).json_schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )


def test_the_layout_is_fixed(to_regex) -> None:
    pattern = pattern_for(to_regex, "sample-all")
    call = _append()
    assert pattern.fullmatch(json.dumps(call))
    assert not pattern.fullmatch(json.dumps(call, indent=2))
    assert not pattern.fullmatch(json.dumps(call, separators=(",", ":")))
    reordered = {"params": call["params"], "function": call["function"]}
    assert not pattern.fullmatch(json.dumps(reordered))
    thoughts_last = {
        "function": call["function"],
        "params": {**{k: v for k, v in call["params"].items() if k != "inner_thoughts"}, "inner_thoughts": "t"},
    }
    assert not pattern.fullmatch(json.dumps(thoughts_last))


def test_inner_thoughts_come_first_and_request_heartbeat_last_where_taken() -> None:
    by_name = {f.name: f for f in SAMPLE}
    search = list(params_schema(by_name["conversation_search"])["properties"])
    assert search == ["inner_thoughts", "query", "page", "request_heartbeat"]
    assert params_schema(by_name["conversation_search"])["required"] == ["inner_thoughts", "query", "request_heartbeat"]
    assert "request_heartbeat" not in params_schema(by_name["send_message"])["properties"]
    for f in SAMPLE:
        assert ("request_heartbeat" in call_gbnf([f])) == (f.name not in ("send_message", "pause_heartbeats"))


def test_every_string_is_bounded() -> None:
    shape = CallShape(max_string_chars=50)
    for f in SAMPLE + HOSTILE:
        schema = params_schema(f, shape)
        strings = [
            p
            for p in schema["properties"].values()
            if p.get("type") == "string" and "enum" not in p and p.get("format") != "date"
        ]
        assert all(p["maxLength"] <= 50 for p in strings)
    assert "{0,1200}" not in call_gbnf(SAMPLE, shape) and "{0,50}" in call_gbnf(SAMPLE, shape)


def _longest(schema: dict[str, Any]) -> Any:
    """The longest value a bounded schema admits (by our layout), to check max_call_chars is attained."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v, ensure_ascii=False)))
    kind = schema.get("type")
    if kind == "string":
        return "2024-12-31" if schema.get("format") == "date" else "x" * schema["maxLength"]
    if kind == "integer":
        return max(schema.get("minimum", 0), schema.get("maximum", 0), key=lambda n: len(str(n)))
    if kind == "boolean":
        return False
    if kind == "object":
        return {k: _longest(v) for k, v in schema["properties"].items()}
    raise AssertionError(kind)


@pytest.mark.parametrize("bound", [1200, 100, 7])
def test_max_call_chars_is_the_length_of_the_longest_call(bound: int, to_regex) -> None:
    shape = CallShape(max_string_chars=bound)
    longest = max(
        (json.dumps({"function": f.name, "params": _longest(params_schema(f, shape))}, ensure_ascii=False) for f in SAMPLE),
        key=len,
    )
    assert len(longest) == max_call_chars(SAMPLE, shape)
    assert to_regex(call_gbnf(SAMPLE, shape)).fullmatch(longest)


@pytest.mark.parametrize("budget", [200, 256, 512, 5000])
def test_shape_for_budget_picks_the_largest_bound_that_fits(budget: int) -> None:
    shape = shape_for_budget(SAMPLE, budget)
    assert max_call_chars(SAMPLE, shape) <= budget
    if shape.max_string_chars < CallShape().max_string_chars:
        bigger = shape.model_copy(update={"max_string_chars": shape.max_string_chars + 1})
        assert max_call_chars(SAMPLE, bigger) > budget
    else:
        assert shape == CallShape()


def test_a_budget_too_small_for_any_call_is_an_error() -> None:
    with pytest.raises(GrammarError, match="raise the turn's max_tokens"):
        shape_for_budget(SAMPLE, 40)


def test_a_custom_call_shape_is_honoured_by_grammar_schema_and_parser(to_regex) -> None:
    shape = CallShape(function_key="name", params_key="arguments", inner_thoughts_key=None)
    say = FunctionSchema(
        name="say", parameters={"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
    )
    call = {"name": "say", "arguments": {"message": "hi"}}
    constraint = build_call_constraint([say], shape)
    assert to_regex(constraint.gbnf).fullmatch(json.dumps(call))
    assert not to_regex(constraint.gbnf).fullmatch(
        json.dumps({"name": "say", "arguments": {"inner_thoughts": "", "message": "hi"}})
    )
    jsonschema.validate(call, constraint.json_schema)
    assert parse_call(json.dumps(call), [say], shape).call.arguments == {"message": "hi"}


@pytest.mark.parametrize(
    ("functions", "message"),
    [
        ([], "no functions"),
        ([SAMPLE[0], SAMPLE[0]], "listed twice"),
        ([FunctionSchema(name="f", parameters={"type": "array"})], "type object"),
        (
            [FunctionSchema(name="f", parameters={"type": "object", "properties": {"x": {"type": "string", "pattern": "a+"}}})],
            "pattern",
        ),
    ],
)
def test_unbuildable_function_sets_are_grammar_errors(functions: list[FunctionSchema], message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        build_call_constraint(functions)


def test_building_is_pure_and_deterministic() -> None:
    first = build_call_constraint(SAMPLE + HOSTILE)
    assert build_call_constraint(SAMPLE + HOSTILE) == first
    assert get_registry().grammar("call").build(SAMPLE + HOSTILE, CallShape()) == first
