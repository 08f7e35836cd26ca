"""Schemas the emitter used to narrow or refuse (issue 11): free-form objects and maps (they compiled to a
grammar that only admitted ``{}``), and schemas without ``type`` (the type their keywords imply is
inferred, as llama.cpp's converter does)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt.contract.types import CallShape, FunctionSchema
from memgpt.errors import GrammarError
from memgpt.grammar.call import build_call_constraint, max_call_chars, params_schema
from memgpt.grammar.gbnf import schema_to_gbnf
from memgpt.parsing._call import parse_call


def admits(to_regex, schema: dict, value: object) -> bool:
    return bool(to_regex(schema_to_gbnf(schema)).fullmatch(json.dumps(value, ensure_ascii=False)))


# ---- 2: free-form objects ----


@pytest.mark.parametrize(
    "value",
    [{}, {"a": 1}, {"a": "x", "b": [1, 2], "c": {"d": None}}, {"k": True, "ü": -1.5}],
)
def test_a_free_form_object_admits_maps_not_only_the_empty_one(to_regex, llama_accepts, value: object) -> None:
    assert admits(to_regex, {"type": "object"}, value)
    assert admits(to_regex, {"type": "object", "additionalProperties": True}, value)
    llama_accepts(schema_to_gbnf({"type": "object"}))


def test_a_typed_map_admits_its_values_and_only_them(to_regex) -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert admits(to_regex, schema, {"a": 1, "b": -2})
    assert not admits(to_regex, schema, {"a": "x"})
    assert not admits(to_regex, schema, [1])


def test_declared_keys_then_undeclared_ones(to_regex) -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "additionalProperties": {"type": "string"},
    }
    assert admits(to_regex, schema, {"x": 1, "note": "hi"})
    assert admits(to_regex, schema, {"x": 1})
    assert not admits(to_regex, schema, {"note": "hi"})
    assert not admits(to_regex, schema, {"x": 1, "n": 2})


def test_a_closed_object_stays_closed(to_regex) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": False}
    assert admits(to_regex, schema, {"x": 1})
    assert not admits(to_regex, schema, {"x": 1, "y": 2})


def test_map_bounds_and_key_names(to_regex) -> None:
    schema = {"type": "object", "minProperties": 1, "maxProperties": 2, "propertyNames": {"maxLength": 3}}
    assert admits(to_regex, schema, {"a": 1, "bcd": 2})
    assert not admits(to_regex, schema, {})
    assert not admits(to_regex, schema, {"a": 1, "b": 2, "c": 3})
    assert not admits(to_regex, schema, {"abcd": 1})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"x": {}}, "maxProperties": 2}, "maxProperties"),
        ({"type": "object", "propertyNames": {"type": "integer"}}, "propertyNames"),
        ({"type": "object", "minProperties": 3, "maxProperties": 2}, "maxProperties 2 is below minProperties 3"),
    ],
)
def test_object_keywords_we_cannot_compile_are_refused(schema: dict, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        schema_to_gbnf(schema)


def test_a_map_parameter_reaches_the_function_through_the_call_grammar(to_regex, llama_accepts) -> None:
    tags = FunctionSchema(
        name="tag",
        parameters={
            "type": "object",
            "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}, "extra": {"type": "object"}},
            "required": ["tags"],
        },
    )
    constraint = build_call_constraint([tags])
    llama_accepts(constraint.gbnf)
    arguments = {"inner_thoughts": "Tag it.", "tags": {"colour": "green", "size": "L"}, "extra": {"n": 1, "ok": True}}
    text = json.dumps({"function": "tag", "params": arguments}, ensure_ascii=False)
    assert to_regex(constraint.gbnf).fullmatch(text)
    assert parse_call(text, [tags]).call.arguments == arguments
    # Bounded like every other part of a call: keys, their number, and any-type values (scalars).
    too_many = {**arguments, "tags": {f"k{i}": "v" for i in range(17)}}
    assert not to_regex(constraint.gbnf).fullmatch(json.dumps({"function": "tag", "params": too_many}))
    long_key = {**arguments, "tags": {"k" * 65: "v"}}
    assert not to_regex(constraint.gbnf).fullmatch(json.dumps({"function": "tag", "params": long_key}))
    nested = {**arguments, "extra": {"n": [1]}}
    assert not to_regex(constraint.gbnf).fullmatch(json.dumps({"function": "tag", "params": nested}))


def test_max_call_chars_counts_a_map(to_regex) -> None:
    tags = FunctionSchema(name="tag", parameters={"type": "object", "properties": {"tags": {"type": "object"}}})
    shape = CallShape(max_string_chars=20)
    longest = {"inner_thoughts": "t" * 20, "tags": {f"{i:02d}" + "k" * 18: "v" * 20 for i in range(16)}}
    text = json.dumps({"function": "tag", "params": longest})
    assert to_regex(build_call_constraint([tags], shape).gbnf).fullmatch(text)
    assert len(text) <= max_call_chars([tags], shape)


# ---- 3: schemas without a type ----


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        (
            {"properties": {"foo": {"type": "integer"}}, "required": ["foo"]},
            [{"foo": 1}, {"foo": 2, "bar": "x"}],
            [{"foo": "x"}, {}, "foo"],
        ),
        ({"minLength": 2}, ["ab", "abc"], ["a", 12]),
        ({"maxLength": 2}, ["", "ab"], ["abc"]),
        ({"maximum": 3.0}, [3, -1, 2.5], ["3", None]),  # numeric bounds are left to validation
        ({"minimum": 1.1}, [1.5, 2], ["x"]),
        ({"items": {"type": "integer"}}, [[], [1, 2]], [["x"], 1]),
        ({"maxItems": 2}, [[], [1, "a"]], [[1, 2, 3]]),
        ({"additionalProperties": {"type": "boolean"}}, [{"a": True}], [{"a": 1}]),
        ({}, [1, "x", None, [1, {"a": [2]}], {"a": {"b": 1}}], []),
        ({"description": "anything"}, [1, "x", {"a": 1}], []),
        ({"enum": [1, "a", None]}, [1, "a", None], [2]),
        ({"const": {"a": 1}}, [{"a": 1}], [{"a": 2}]),
        ({"anyOf": [{"maxLength": 1}, {"minimum": 5}]}, ["a", 5, 6.5], ["ab", -1]),
    ],
)
def test_an_untyped_schema_takes_the_type_its_keywords_imply(
    to_regex, llama_accepts, schema: dict, good: list, bad: list
) -> None:
    llama_accepts(schema_to_gbnf(schema))
    for value in good:
        assert admits(to_regex, schema, value), value
    for value in bad:
        assert not admits(to_regex, schema, value), value


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"pattern": "^a"}, "pattern"),
        ({"required": ["a"]}, "required"),
        ({"$ref": "#/$defs/x"}, r"\$ref"),
        (False, "schema"),
    ],
)
def test_what_cannot_be_compiled_is_still_refused_clearly(schema: object, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        schema_to_gbnf(schema)  # type: ignore[arg-type]


def test_an_untyped_parameter_is_bounded_in_the_call_grammar() -> None:
    note = FunctionSchema(name="note", parameters={"type": "object", "properties": {"text": {"maxLength": 5000}, "any": {}}})
    schema = params_schema(note, CallShape(max_string_chars=40))
    assert schema["properties"]["text"] == {"maxLength": 40, "type": "string"}
    assert schema["properties"]["any"]["maxLength"] == 40


JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-5, 20) | st.floats(-5, 20, allow_nan=False) | st.sampled_from(["x", "string", ""])
)
KEYWORDS = st.sampled_from(
    [
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "additionalProperties",
        "propertyNames",
        "maxProperties",
        "format",
        "pattern",
        "not",
    ]
)
SCHEMAS = st.recursive(
    st.dictionaries(KEYWORDS, JSON_SCALARS, max_size=3) | st.booleans(),
    lambda inner: st.dictionaries(
        KEYWORDS, inner | st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_size=4
    ),
    max_leaves=12,
)


@given(SCHEMAS)
@settings(max_examples=400, deadline=None)
def test_any_malformed_schema_is_a_grammar_error_never_a_crash(schema: object) -> None:
    try:
        schema_to_gbnf(schema)  # type: ignore[arg-type]
    except GrammarError:
        pass
    try:
        build_call_constraint([FunctionSchema(name="f", parameters={"type": "object", "properties": {"x": schema}})])
    except GrammarError:
        pass
