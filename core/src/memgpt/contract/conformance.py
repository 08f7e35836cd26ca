"""Does a constrained completion really match its constraint? Servers are known to ignore a constraint
they cannot use (a schema that failed to convert, an unknown field, a grammar without ``root``) and still
answer 200, so backends check the output before they report it as constrained.

The check validates against the constraint's JSON schema (``jsonschema``, draft 2020-12). A GBNF-only
constraint cannot be checked without a grammar engine: only its JSON-ness is, when the grammar's root
opens an object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from memgpt.contract.types import Constraint


def violation(text: str, constraint: Constraint) -> str | None:
    """Why ``text`` does not match ``constraint``, or ``None`` when it does (or cannot be told)."""
    if constraint.json_schema is None and not _gbnf_wants_object(constraint.gbnf or ""):
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"is not JSON ({exc})"
    if constraint.json_schema is None:
        return None if isinstance(value, dict) else "is not a JSON object"
    return schema_violation(value, constraint.json_schema)


def _gbnf_wants_object(gbnf: str) -> bool:
    match = re.search(r"^\s*root\s*::=\s*(.*)$", gbnf, re.MULTILINE)
    return match is not None and match.group(1).lstrip().startswith(('"{', "'{"))


def schema_violation(value: Any, schema: dict[str, Any]) -> str | None:
    """Where and how ``value`` breaks ``schema`` (``$.params.x: 3 is not of type 'string'``), or ``None``.

    A schema ``jsonschema`` cannot use is not checked (``None``): the server may still have enforced it.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, best_match

    try:
        error = best_match(Draft202012Validator(schema).iter_errors(value))
    except (SchemaError, TypeError, ValueError, LookupError):
        return None
    if error is None:
        return None
    return f"{error.json_path}: {error.message}"
