"""The JSON schema → GBNF emitter: each supported keyword means exactly what JSON schema says, in the fixed
``json.dumps`` layout, and llama.cpp's parser accepts everything emitted."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt.errors import GrammarError
from memgpt.grammar.gbnf import gbnf_literal, int_range_gbnf, schema_to_gbnf

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


def grammar_of(schema: dict) -> str:
    return schema_to_gbnf(schema)


@given(TEXT)
@settings(max_examples=150, deadline=None)
def test_a_literal_reads_back_as_the_same_text(to_regex, text: str) -> None:
    pattern = to_regex(f"root ::= {gbnf_literal(text)}\n")
    assert pattern.fullmatch(text)


@pytest.mark.parametrize("text", ['say "hi"', "back\\slash", "line\nbreak\ttab\r", "\x00\x01\x1f\x7f", "ünï ☃ 😀 日本", "", "]["])
def test_llama_cpp_accepts_tricky_literals(llama_accepts, to_regex, text: str) -> None:
    grammar = f'root ::= {gbnf_literal(text)} "!"\n'
    llama_accepts(grammar)
    assert to_regex(grammar).fullmatch(text + "!")


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(GrammarError, match="surrogate"):
        gbnf_literal("bad \ud800")


@given(low=st.integers(-1500, 1500), span=st.integers(0, 1500))
@settings(max_examples=120, deadline=None)
def test_integer_ranges_are_exact(to_regex, low: int, span: int) -> None:
    high = low + span
    pattern = to_regex(f"root ::= {int_range_gbnf(low, high)}\n")
    for n in range(low - 25, high + 26):
        assert bool(pattern.fullmatch(str(n))) == (low <= n <= high), (low, high, n)
    assert not pattern.fullmatch("-0")
    assert not pattern.fullmatch("0" + str(abs(high)))


@given(
    low=st.integers(-(10**12), 10**12),
    span=st.integers(0, 10**12),
    probe=st.lists(st.integers(-(2 * 10**12), 2 * 10**12), max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_wide_integer_ranges_are_exact(to_regex, low: int, span: int, probe: list[int]) -> None:
    high = low + span
    pattern = to_regex(f"root ::= {int_range_gbnf(low, high)}\n")
    for n in [*probe, low, high, low - 1, high + 1]:
        assert bool(pattern.fullmatch(str(n))) == (low <= n <= high), (low, high, n)


def test_unbounded_integers_have_at_most_16_digits(to_regex) -> None:
    pattern = to_regex(grammar_of({"type": "integer"}))
    for text in ["0", "-7", "9" * 16, "-" + "9" * 16, "10"]:
        assert pattern.fullmatch(text)
    for text in ["9" * 17, "01", "-0", "1.0", "+1", ""]:
        assert not pattern.fullmatch(text)
    natural = to_regex(grammar_of({"type": "integer", "minimum": 0}))
    assert natural.fullmatch("12") and not natural.fullmatch("-12")
    exclusive = to_regex(grammar_of({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3}))
    assert [n for n in range(-2, 6) if exclusive.fullmatch(str(n))] == [1, 2]


def test_an_empty_integer_range_is_an_error() -> None:
    with pytest.raises(GrammarError, match="no integer"):
        grammar_of({"type": "integer", "minimum": 5, "maximum": 4})


def test_dates_are_exactly_the_calendar_dates(to_regex) -> None:
    pattern = to_regex(grammar_of({"type": "string", "format": "date"}))
    for year in ("0001", "0004", "1900", "1999", "2000", "2023", "2024", "2100", "9999"):
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year}-{month:02d}-{day:02d}"
                try:
                    date.fromisoformat(text)
                    valid = True
                except ValueError:
                    valid = False
                assert bool(pattern.fullmatch(json.dumps(text))) == valid, text
    assert not pattern.fullmatch('"0000-01-01"')
    assert not pattern.fullmatch('"2024-1-01"')


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12), st.booleans())
@settings(max_examples=150, deadline=None)
def test_strings_match_their_json_encoding_within_the_bounds(to_regex, text: str, ascii_only: bool) -> None:
    pattern = to_regex(grammar_of({"type": "string", "minLength": 2, "maxLength": 8}))
    encoded = json.dumps(text, ensure_ascii=ascii_only)
    # An escape counts as one character; a character outside the BMP is two \u escapes when ASCII-escaped.
    units = len(text) if not ascii_only else len(text.encode("utf-16-le")) // 2
    assert bool(pattern.fullmatch(encoded)) == (2 <= units <= 8)


def test_strings_refuse_raw_control_characters_and_lone_quotes(to_regex) -> None:
    pattern = to_regex(grammar_of({"type": "string"}))
    assert pattern.fullmatch('"ok \\" \\\\ \\n \\u00e9"')
    for bad in ['"raw\nnewline"', '"a"b"', '"trailing\\"', '"\\x41"', "'single'"]:
        assert not pattern.fullmatch(bad), bad


OBJECT = {
    "type": "object",
    "properties": {
        "opt_first": {"type": "boolean"},
        "a": {"type": "integer", "minimum": 0, "maximum": 9},
        "b": {"enum": ["x", 'y"z']},
        "c": {"type": "null"},
    },
    "required": ["a", "b"],
    "additionalProperties": False,
}


def test_objects_have_required_keys_then_optional_ones_in_a_fixed_layout(to_regex) -> None:
    pattern = to_regex(grammar_of(OBJECT))
    ok = [
        {"a": 1, "b": "x"},
        {"a": 1, "opt_first": True, "b": 'y"z'},
        {"a": 1, "b": "x", "c": None},
        {"a": 1, "opt_first": False, "b": "x", "c": None},
    ]
    for value in ok:
        assert pattern.fullmatch(json.dumps(value)), value
    bad = [{"b": "x", "a": 1}, {"a": 1}, {"a": 1, "b": "x", "d": 1}, {"a": 10, "b": "x"}, {"a": 1, "b": "y"}]
    for value in bad:
        assert not pattern.fullmatch(json.dumps(value)), value
    assert not pattern.fullmatch('{"a":1, "b": "x"}')  # the layout is fixed: no free whitespace


@given(st.lists(st.booleans(), min_size=3, max_size=3))
def test_all_optional_objects_take_any_subset_in_order(to_regex, present: list[bool]) -> None:
    schema = {
        "type": "object",
        "properties": {k: {"type": "integer", "minimum": 0, "maximum": 3} for k in "pqr"},
        "additionalProperties": False,
    }
    pattern = to_regex(grammar_of(schema))
    value = {k: 1 for k, keep in zip("pqr", present, strict=True) if keep}
    assert pattern.fullmatch(json.dumps(value))
    if len(value) > 1:
        assert not pattern.fullmatch(json.dumps(dict(reversed(value.items()))))


def test_arrays_respect_item_bounds(to_regex) -> None:
    pattern = to_regex(grammar_of({"type": "array", "items": {"type": "string", "maxLength": 2}, "minItems": 1, "maxItems": 3}))
    for n, ok in [(0, False), (1, True), (3, True), (4, False)]:
        assert bool(pattern.fullmatch(json.dumps(["ab"] * n))) == ok, n
    assert not pattern.fullmatch(json.dumps(["abc"]))
    unbounded = to_regex(grammar_of({"type": "array", "items": {"type": "boolean"}}))
    assert (
        unbounded.fullmatch("[]")
        and unbounded.fullmatch(json.dumps([True] * 16))
        and not unbounded.fullmatch(json.dumps([True] * 17))
    )


def test_unions_numbers_and_nulls(to_regex) -> None:
    pattern = to_regex(grammar_of({"anyOf": [{"type": "number", "minimum": 0}, {"type": ["string", "null"], "maxLength": 3}]}))
    for text in ["0", "1.5", "2e+20", '"abc"', "null", "12.25"]:
        assert pattern.fullmatch(text), text
    for text in ["-1", '"abcd"', "01", "true"]:
        assert not pattern.fullmatch(text), text
    signed = to_regex(grammar_of({"type": "number"}))
    assert signed.fullmatch("-0.5") and signed.fullmatch(json.dumps(-1.25e-07))


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: abs(x) < 1e16))
@settings(max_examples=300, deadline=None)
def test_every_float_python_writes_is_a_number(to_regex, x: float) -> None:
    """``json.dumps`` writes the shortest repr: up to 17 significant digits, positional down to 1e-4
    (``0.000`` then 17 digits), exponent form below and from 1e16."""
    assert to_regex(grammar_of({"type": "number"})).fullmatch(json.dumps(x)), json.dumps(x)


@pytest.mark.parametrize(
    "x", [0.05000000074505806, 0.00012345678901234568, 1.2345678901234567e-05, 123456789012345.67, -0.0, 5e-324]
)
def test_longest_float_forms_are_numbers(to_regex, x: float) -> None:
    assert to_regex(grammar_of({"type": "number"})).fullmatch(json.dumps(x)), json.dumps(x)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "pattern": "^a+$"}, r"value: schema keyword\(s\) \['pattern'\]"),
        ({"type": "object", "properties": {"x": {"$ref": "#/defs/x"}}}, r"value\.x: schema keyword\(s\) \['\$ref'\]"),
        ({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["y"]}, "required key"),
        ({"type": "array", "items": [{"type": "integer"}]}, "`items` must be one schema"),
        ({"type": "tuple"}, "type 'tuple' is not supported"),
        ({"enum": []}, "non-empty"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "below minLength"),
        ({"anyOf": [{"type": "integer"}], "type": "string"}, r"\['type'\] both beside the union and in a branch"),
        ({"anyOf": [False]}, "no branch of anyOf admits a value"),
        ("not a schema", "must be a JSON object"),
    ],
)
def test_unsupported_schemas_are_refused_with_where_and_why(schema: object, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        grammar_of(schema)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schema",
    [
        OBJECT,
        {"type": "string", "format": "date"},
        {"type": "array", "items": {"type": "integer"}},
        {"anyOf": [{"type": "number"}, {"type": "null"}]},
    ],
)
def test_llama_cpp_accepts_every_emitted_grammar(llama_accepts, schema: dict) -> None:
    llama_accepts(grammar_of(schema))
