"""Function documentation generated from the schemas: every function and parameter, with its type,
allowed values, bounds and whether it is required, in the order the grammar makes the model write them."""

from __future__ import annotations

import pytest

from memgpt.contract.types import CallShape, FunctionSchema
from memgpt.functions.docs import describe_type, function_docs, system_text
from memgpt.testing.wrapper import sample_functions


def param_lines(docs: str, function: str) -> list[str]:
    lines = docs.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{function}:"))
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


def test_every_function_is_documented_with_its_description() -> None:
    docs = function_docs(sample_functions())
    for function in sample_functions():
        assert f"{function.name}: {function.description}" in docs.splitlines()


def test_parameters_show_type_values_bounds_and_requiredness_in_grammar_order() -> None:
    docs = function_docs(sample_functions())
    assert param_lines(docs, "core_memory_append") == [
        'name (string, one of "persona", "human", required): Which core memory block.',
        "content (string, at most 1200 characters, required)",
        "request_heartbeat (boolean, required)",
    ]
    assert param_lines(docs, "conversation_search_date") == [
        "start_date (string, a date as YYYY-MM-DD, required): A day, YYYY-MM-DD.",
        "end_date (string, a date as YYYY-MM-DD, required): A day, YYYY-MM-DD.",
        "page (integer, 0 to 1000, optional): Result page, from 0.",
        "request_heartbeat (boolean, required)",
    ]
    assert param_lines(docs, "pause_heartbeats") == ["minutes (integer, 0 to 360, required)"]


def test_the_call_convention_is_explained_once() -> None:
    docs = function_docs(sample_functions())
    lines = docs.splitlines()
    assert sum(line.startswith('"inner_thoughts": ') for line in lines) == 1
    assert sum(line.startswith('"request_heartbeat" (where a function takes it)') for line in lines) == 1
    assert '{"function": "<function name>", "params": {"inner_thoughts": "...", <its parameters>}}' in docs
    assert "  inner_thoughts" not in docs  # not repeated per function


def test_a_custom_call_shape_is_what_the_docs_show() -> None:
    shape = CallShape(function_key="name", params_key="arguments", inner_thoughts_key="thoughts")
    docs = function_docs(sample_functions()[:1], shape)
    assert '{"name": "<function name>", "arguments": {"thoughts": "...", <its parameters>}}' in docs


def test_hostile_descriptions_are_kept_on_one_line() -> None:
    weird = FunctionSchema(
        name="notiz_für_später",
        description='Say "hi" \\ then\nnewline\ttab ☃',
        parameters={"type": "object", "properties": {"x": {"type": "string", "description": 'a\nb "c"'}}, "required": []},
    )
    docs = function_docs([weird])
    assert 'notiz_für_später: Say "hi" \\ then newline tab ☃' in docs.splitlines()
    assert '  x (string, at most 1200 characters, optional): a b "c"' in docs.splitlines()


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 3}, "list of (integer, at least 1)"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string or null"),
        ({"const": "x"}, 'exactly "x"'),
        ({"type": ["string", "null"]}, "string or null"),
        ({"type": "number", "maximum": 1.5}, "number, at most 1.5"),
    ],
)
def test_describe_type(schema: dict, text: str) -> None:
    assert describe_type(schema) == text


def test_without_functions_the_system_text_is_unchanged() -> None:
    assert system_text("Be brief.", []) == "Be brief."
    assert system_text("Be brief.\n", sample_functions()[:1]).startswith("Be brief.\n\nFunctions:")
