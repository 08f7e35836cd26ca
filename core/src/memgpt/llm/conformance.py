"""Does a constrained completion really match its constraint? Servers are known to ignore a constraint
they cannot use (a schema that failed to convert, an unknown field, a grammar without ``root``) and still
answer 200, so backends check the output before they report it as constrained.

The check validates against the constraint's JSON schema, for the keywords the grammar builders emit
(``type``, ``enum``, ``const``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``prefixItems``, ``min/maxItems``, ``min/maxLength``, ``pattern``, ``minimum``/``maximum``, ``anyOf``,
``oneOf``, ``allOf``, local ``$ref``). Keywords it does not know are not checked. A GBNF-only constraint
cannot be checked without a grammar engine: only its JSON-ness is, when the grammar's root opens an object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from memgpt.llm.types import Constraint

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def violation(text: str, constraint: Constraint) -> str | None:
    """Why ``text`` does not match ``constraint``, or ``None`` when it does (or cannot be told)."""
    if constraint.json_schema is None and not _gbnf_wants_object(constraint.gbnf or ""):
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON ({exc.msg} at character {exc.pos})"
    if constraint.json_schema is None:
        return None if isinstance(value, dict) else "not a JSON object"
    return schema_violation(value, constraint.json_schema)


def _gbnf_wants_object(gbnf: str) -> bool:
    match = re.search(r"^\s*root\s*::=\s*(.*)$", gbnf, re.MULTILINE)
    return bool(match) and match.group(1).lstrip().startswith(('"{', "'{"))


def schema_violation(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, where: str = "$") -> str | None:
    """The first place where ``value`` breaks ``schema`` (a JSON path and a reason), or ``None``."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return None
    if schema is False:
        return f"{where}: no value is allowed here"
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root)
        if target is None:
            return None  # a reference we cannot follow is not checked
        problem = schema_violation(value, target, root, where)
        if problem:
            return problem
    for check in (_check_combinators, _check_type, _check_enum, _check_string, _check_number, _check_array, _check_object):
        problem = check(value, schema, root, where)
        if problem:
            return problem
    return None


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check_combinators(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    for sub in schema.get("allOf", []):
        problem = schema_violation(value, sub, root, where)
        if problem:
            return problem
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options is None:
            continue
        matches = sum(schema_violation(value, sub, root, where) is None for sub in options)
        if matches == 0 or (key == "oneOf" and matches > 1):
            return f"{where}: matches {matches} of the {key} alternatives"
    return None


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(name)
    return expected is None or isinstance(value, expected)


def _check_type(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    wanted = schema.get("type")
    if wanted is None:
        return None
    names = wanted if isinstance(wanted, list) else [wanted]
    if any(_is_type(value, name) for name in names):
        return None
    return f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"


def _check_enum(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if "const" in schema and value != schema["const"]:
        return f"{where}: expected {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {value!r} is not one of {schema['enum']!r}"
    return None


def _check_string(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if not isinstance(value, str):
        return None
    if len(value) < schema.get("minLength", 0):
        return f"{where}: shorter than {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{where}: longer than {schema['maxLength']} characters"
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            if re.search(pattern, value) is None:
                return f"{where}: does not match pattern {pattern!r}"
        except re.error:
            return None  # a pattern Python's re cannot read is not checked
    return None


def _check_number(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if not _is_type(value, "number"):
        return None
    if "minimum" in schema and value < schema["minimum"]:
        return f"{where}: below the minimum {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{where}: above the maximum {schema['maximum']}"
    return None


def _check_array(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if not isinstance(value, list):
        return None
    if len(value) < schema.get("minItems", 0):
        return f"{where}: fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{where}: more than {schema['maxItems']} items"
    prefix = schema.get("prefixItems", [])
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else schema.get("items")
        if isinstance(sub, (dict, bool)):
            problem = schema_violation(item, sub, root, f"{where}[{index}]")
            if problem:
                return problem
    return None


def _check_object(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in schema.get("required", []):
        if key not in value:
            return f"{where}: missing required property {key!r}"
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            sub = properties[key]
        elif extra is False:
            return f"{where}: unexpected property {key!r}"
        else:
            sub = extra
        if isinstance(sub, (dict, bool)):
            problem = schema_violation(item, sub, root, f"{where}.{key}")
            if problem:
                return problem
    return None
