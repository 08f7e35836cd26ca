"""Function documentation for the system turn, generated from each function's JSON schema.

One line per function (name: description), one line per parameter with its type, whether it is required,
its allowed values and bounds. Parameters are listed in the order the call grammar forces them, so what
the model reads is what it will have to write. ``inner_thoughts`` and ``request_heartbeat`` belong to the
call convention, not to one function: they are explained once, above the list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from memgpt.contract.types import CallShape, FunctionSchema
from memgpt.grammar.call import HEARTBEAT_KEY, params_schema

_THOUGHTS_TEXT = "your private inner monologue; the user never sees it. Keep it short."
_HEARTBEAT_TEXT = "true to continue right after the call (to chain another function); false to wait for the user."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_type(schema: Any) -> str:
    """A short human description of a parameter's type: ``string, one of "a", "b"``, ``integer, 0 to 9``."""
    if not isinstance(schema, dict):
        return "any value"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(describe_type(option) for option in schema[key])
    if "const" in schema:
        return f"exactly {json.dumps(schema['const'], ensure_ascii=False)}"
    kind = schema.get("type", "any")
    kind_text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    details = []
    if "enum" in schema:
        details.append("one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"]))
    if kind == "string" and schema.get("format") == "date":
        details.append("a date as YYYY-MM-DD")
    if "maxLength" in schema:
        details.append(f"at most {schema['maxLength']} characters")
    if "minimum" in schema and "maximum" in schema:
        details.append(f"{schema['minimum']} to {schema['maximum']}")
    elif "minimum" in schema:
        details.append(f"at least {schema['minimum']}")
    elif "maximum" in schema:
        details.append(f"at most {schema['maximum']}")
    if kind == "array" and isinstance(schema.get("items"), dict):
        kind_text = f"list of ({describe_type(schema['items'])})"
    return ", ".join([kind_text, *details])


def function_docs(functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> str:
    """The documentation block for ``functions`` (empty when there are none)."""
    if not functions:
        return ""
    thoughts = shape.inner_thoughts_key
    example_params = f'"{thoughts}": "...", ' if thoughts else ""
    lines = [
        "Functions: answer with exactly one JSON object that calls one of the functions below:",
        f'{{"{shape.function_key}": "<function name>", "{shape.params_key}": {{{example_params}<its parameters>}}}}',
    ]
    if thoughts:
        described = _declared_description(functions, thoughts) or _THOUGHTS_TEXT
        lines.append(f'"{thoughts}": {described}')
    if any(HEARTBEAT_KEY in f.properties for f in functions):
        described = _declared_description(functions, HEARTBEAT_KEY) or _HEARTBEAT_TEXT
        lines.append(f'"{HEARTBEAT_KEY}" (where a function takes it): {described}')
    for function in functions:
        lines.append("")
        lines.append(f"{function.name}: {_one_line(function.description)}" if function.description else f"{function.name}:")
        required = set(function.required)
        ordered = params_schema(function, shape)["properties"]
        for key in ordered:
            if key == thoughts:
                continue
            # Types and bounds as the grammar enforces them; the description as the function gives it.
            declared = function.properties.get(key)
            need = "required" if key in required or key == HEARTBEAT_KEY else "optional"
            line = f"  {key} ({describe_type(ordered[key])}, {need})"
            description = declared.get("description") if isinstance(declared, dict) and key != HEARTBEAT_KEY else None
            lines.append(f"{line}: {_one_line(description)}" if description else line)
    return "\n".join(lines)


def _declared_description(functions: Sequence[FunctionSchema], key: str) -> str | None:
    for function in functions:
        schema = function.properties.get(key)
        if isinstance(schema, dict) and schema.get("description"):
            return _one_line(schema["description"])
    return None


def system_text(system: str, functions: Sequence[FunctionSchema], shape: CallShape = CallShape()) -> str:
    """The first system turn: the agent's system prompt, then the function documentation."""
    docs = function_docs(functions, shape)
    if not docs:
        return system
    return f"{system.rstrip()}\n\n{docs}" if system.strip() else docs
