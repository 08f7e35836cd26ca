"""JSON schema → GBNF, in pure Python, for the schema subset memgpt's functions use.

Why our own emitter: llama-cpp-python ships a general converter (``json_schema_to_gbnf``), but it lives in
the compiled binding, and a user of a server backend (llama-server, koboldcpp, text-generation-webui) must
be able to build a grammar without compiling llama.cpp. It is also not the layout we want: ours is exact
for a small subset and emits one fixed layout, the one ``json.dumps(value, ensure_ascii=False)`` prints
(``{"a": 1, "b": [true, false]}``: no free whitespace, keys in declared order). Fixed layout makes long runs
of the output forced (``{"function": "``), which helps small models and costs the sampler nothing, and it
means any valid value, dumped by Python, matches the grammar (the tests rely on that).

Supported (anything else raises ``GrammarError`` naming where it is):

- ``object``: ``properties`` in declared order (the first required key leads), ``required`` and optional
  keys; then the undeclared keys JSON schema admits unless ``additionalProperties`` is false (any value,
  or that schema's), at most ``maxProperties`` or ``DEFAULT_MAX_ITEMS`` of them, named as
  ``propertyNames`` says; ``minProperties`` / ``maxProperties`` only for maps (no declared keys).
- ``string``: ``minLength`` / ``maxLength`` (in JSON characters: an escape such as ``\\n`` counts as one,
  as it decodes to one character), ``format: date`` (a real calendar date), other formats are ignored.
- ``integer``: ``minimum`` / ``maximum`` (and the exclusive forms) exactly, as digit ranges; without a
  bound at most 16 digits.
- ``number``: sign dropped when ``minimum >= 0``; otherwise range bounds are left to validation. Up to
  16 integer and 20 fraction digits: every float Python writes below 1e16.
- ``boolean``, ``null``, ``enum`` / ``const`` of JSON scalars, ``type`` lists, ``anyOf`` / ``oneOf``
  (``oneOf``'s exclusivity is not enforced), ``array`` with ``items``, ``minItems`` / ``maxItems`` (at most
  ``DEFAULT_MAX_ITEMS`` when unbounded; no ``items``: any values).
- A schema without ``type`` takes the type its keywords imply (``properties`` an object, ``items`` an
  array, ``maxLength`` a string, ``minimum`` a number; ``with_inferred_type``), as llama.cpp's converter
  does; one that implies none (``{}``, ``true``) is any JSON value, nesting at most ``ANY_DEPTH`` deep.
- Annotations (``description``, ``title``, ``default``, ``examples``, ``$schema``) are ignored.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from memgpt.errors import GrammarError
from memgpt.grammar.ranges import MAX_INT_DIGITS, int_bounds, int_range_gbnf

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_MAX_ITEMS = 16  # items of an array, and undeclared keys of an object, when the schema sets no bound
ANY_DEPTH = 3  # how deep a value of any type (schema ``{}``) may nest arrays and objects
# Python writes a float in positional form down to 1e-4 with up to 17 significant digits: 0.000 + 17 digits.
MAX_FRAC_DIGITS = 20

#: One character inside a JSON string: anything but a quote, a backslash or a control character (which
#: JSON requires escaped), or an escape. Matches what ``json.dumps`` writes with or without ``ensure_ascii``
#: (DEL, U+007F, is allowed raw: JSON does not escape it and neither does Python).
CHAR_RULE = r'[^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'

_ANNOTATIONS = {"description", "title", "default", "examples", "$schema", "$comment", "deprecated", "readOnly", "writeOnly"}
_ALLOWED = {
    "object": {"type", "properties", "required", "additionalProperties", "propertyNames", "minProperties", "maxProperties"},
    "string": {"type", "maxLength", "minLength", "format", "enum", "const"},
    "integer": {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const"},
    "number": {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const"},
    "boolean": {"type", "enum", "const"},
    "null": {"type", "enum", "const"},
    "array": {"type", "items", "minItems", "maxItems"},
}


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal. Non-ASCII stays UTF-8 (llama.cpp decodes it); control
    characters, quotes and backslashes are escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        elif code in (0x85, 0x2028, 0x2029):  # line breaks to Unicode: escaped so a rule stays on one line
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise GrammarError(f"cannot put the lone surrogate U+{code:04X} in a grammar literal; {text!r} is not valid text")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def json_literal(value: Any) -> str:
    """A JSON scalar as the GBNF literal of its ``json.dumps`` form."""
    try:
        dumped = json.dumps(value, ensure_ascii=False)
        dumped.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can still carry it escaped
        dumped = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"{value!r} is not a JSON value: {exc}") from None
    return gbnf_literal(dumped)


def rule_name(hint: str) -> str:
    """A GBNF rule name (``[a-z0-9-]``) derived from ``hint``."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in hint.lower())
    cleaned = "-".join(part for part in cleaned.split("-") if part)
    return cleaned or "r"


class GbnfBuilder:
    """Collects rules; identical bodies share one rule, so a schema used twice costs nothing twice."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}

    def add(self, hint: str, body: str) -> str:
        """Add ``body`` under a name derived from ``hint`` (or reuse the rule with the same body)."""
        if body in self._by_body:
            return self._by_body[body]
        base = rule_name(hint)
        name, n = base, 1
        while name in self.rules or name == "root":
            n += 1
            name = f"{base}-{n}"
        self.rules[name] = body
        self._by_body[body] = name
        return name

    def render(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    # ---- schema nodes ----

    def value(self, schema: Any, path: str) -> str:
        """The GBNF expression (usually a rule name) for a value matching ``schema``."""
        if schema is True:
            return self.any_value(ANY_DEPTH)
        if not isinstance(schema, dict):
            raise GrammarError(f"{path}: a schema must be a JSON object (or true), got {schema!r}")
        if schema.get("uniqueItems") is False:  # the default: says nothing
            schema = {k: v for k, v in schema.items() if k != "uniqueItems"}
        for key in ("anyOf", "oneOf"):
            if key in schema:
                if not isinstance(schema[key], list):
                    raise GrammarError(f"{path}: {key} must be a list of schemas")
                base = {k: v for k, v in schema.items() if k != key and k not in _ANNOTATIONS}
                # Keywords beside the union apply to every branch; a branch that admits nothing is left out.
                branches = [_merged(base, option, f"{path}.{key}[{i}]") for i, option in enumerate(schema[key])]
                options = [self.value(b, f"{path}.{key}[{i}]") for i, b in enumerate(branches) if b is not False]
                if not options:
                    raise GrammarError(f"{path}: no branch of {key} admits a value")
                return self.add(path, " | ".join(dict.fromkeys(options)))
        if "const" in schema:
            return json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise GrammarError(f"{path}: enum must be a non-empty list")
            return self.add(path, " | ".join(dict.fromkeys(json_literal(v) for v in values)))
        if "type" not in schema:
            schema = with_inferred_type(schema, path)
            if "type" not in schema:
                return self.any_value(ANY_DEPTH)
        kind = schema.get("type")
        if isinstance(kind, list):
            unsupported = [k for k in kind if k not in _ALLOWED]
            if unsupported or not kind:
                raise GrammarError(f"{path}: type {kind!r} is not supported (supported: {', '.join(sorted(_ALLOWED))})")
            unknown = set(schema) - set().union(*(_ALLOWED[k] for k in kind)) - _ANNOTATIONS
            if unknown:
                raise GrammarError(f"{path}: schema keyword(s) {sorted(unknown)} are not supported for type {kind!r}")
            # Each keyword applies to the types it belongs to (maxLength to the string, not to null).
            options = [
                self.value({key: v for key, v in schema.items() if key in _ALLOWED[k]} | {"type": k}, f"{path}.{k}") for k in kind
            ]
            return self.add(path, " | ".join(dict.fromkeys(options)))
        if kind not in _ALLOWED:
            raise GrammarError(f"{path}: type {kind!r} is not supported (supported: {', '.join(sorted(_ALLOWED))})")
        unknown = set(schema) - _ALLOWED[kind] - _ANNOTATIONS
        if unknown:
            raise GrammarError(f"{path}: schema keyword(s) {sorted(unknown)} are not supported for type {kind!r}")
        rule: str = getattr(self, f"_{kind}")(schema, path)
        return rule

    def _object(self, schema: dict[str, Any], path: str) -> str:
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise GrammarError(f"{path}: properties must be an object of schemas")
        required = set(schema.get("required", []))
        missing = required - set(properties)
        if missing:
            raise GrammarError(f"{path}: required key(s) {sorted(missing)} have no schema in properties")
        banned = [key for key, sub in properties.items() if sub is False]  # a key that must not appear
        if required & set(banned):
            raise GrammarError(f"{path}: required key(s) {sorted(required & set(banned))} admit no value (schema false)")
        pairs = [
            (key in required, f"{gbnf_literal(json.dumps(key, ensure_ascii=False) + ': ')} {self.value(sub, f'{path}.{key}')}")
            for key, sub in properties.items()
            if sub is not False
        ]
        extra = self._extra_members(schema, path, bool(properties))
        if extra is not None:
            pairs.append(extra)
        if not pairs:
            return '"{}"'
        if any(req for req, _ in pairs):
            # Declared order, except that optional keys declared before the first required key follow it:
            # then every optional key has a key before it and carries its own comma.
            first = next(i for i, (req, _) in enumerate(pairs) if req)
            ordered = [pairs[first], *pairs[:first], *pairs[first + 1 :]]
            parts = [ordered[0][1]]
            for req, kv in ordered[1:]:
                parts.append(f'", " {kv}' if req else f'(", " {kv})?')
            return self.add(path, '"{" ' + " ".join(parts) + ' "}"')
        # All optional: whichever key comes first has no comma before it.
        tails = []
        for i, (_, kv) in enumerate(pairs):
            rest = " ".join(f'(", " {other})?' for _, other in pairs[i + 1 :])
            tails.append(f"{kv} {rest}".strip())
        return self.add(path, '"{" (' + " | ".join(tails) + ')? "}"')

    def _extra_members(self, schema: dict[str, Any], path: str, declared: bool) -> tuple[bool, str] | None:
        """The undeclared keys an object admits (JSON schema: any, unless ``additionalProperties`` says
        otherwise), after the declared ones: ``(at least one?, expression for one or more members)``, or
        None when there can be none. At most ``maxProperties`` (else ``DEFAULT_MAX_ITEMS``) of them."""
        extra = schema.get("additionalProperties", True)
        if extra is False or schema.get("propertyNames") is False:
            return None
        if declared and ("minProperties" in schema or "maxProperties" in schema):
            raise GrammarError(
                f"{path}: minProperties / maxProperties next to properties are not supported; bound a map without declared keys"
            )
        low = int(schema.get("minProperties", 0))
        high = int(schema.get("maxProperties", DEFAULT_MAX_ITEMS))
        if high < low:
            raise GrammarError(f"{path}: maxProperties {high} is below minProperties {low}")
        if high == 0:
            return None
        names = schema.get("propertyNames", {"type": "string"})
        if names is True:
            names = {"type": "string"}
        if not isinstance(names, dict) or names.get("type", "string") != "string" or {"const", "enum"} & set(names):
            raise GrammarError(f"{path}: propertyNames must be a string schema (type, minLength, maxLength, format)")
        key = self.value({**names, "type": "string"}, f"{path}-key")
        member = self.add(f"{path}-member", f'{key} ": " {self.value(extra, f"{path}-value")}')
        return low > 0, self.add(f"{path}-members", f'{member} (", " {member}){{{max(low - 1, 0)},{high - 1}}}')

    def any_value(self, depth: int) -> str:
        """Any JSON value, nesting arrays and objects at most ``depth`` deep (each at most
        ``DEFAULT_MAX_ITEMS`` long): the grammar stays regular, so it can be checked and bounded."""
        char = self.add("char", CHAR_RULE)
        string = self.add("string", f'"\\"" {char}* "\\""')
        number = self._number({}, "number")
        scalar = self.add("any-scalar", f'{string} | {number} | "true" | "false" | "null"')
        if depth <= 0:
            return scalar
        inner = self.any_value(depth - 1)
        more = DEFAULT_MAX_ITEMS - 1
        array = f'"[" ({inner} (", " {inner}){{0,{more}}})? "]"'
        member = self.add(f"any-member-{depth}", f'{string} ": " {inner}')
        obj = f'"{{" ({member} (", " {member}){{0,{more}}})? "}}"'
        return self.add(f"any-{depth}", f"{scalar} | {array} | {obj}")

    def _string(self, schema: dict[str, Any], path: str) -> str:
        if schema.get("format") == "date":
            return self._date()
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        char = self.add("char", CHAR_RULE)
        if high is None:
            body = f'"\\"" {char}{{{low},}} "\\""' if low else f'"\\"" {char}* "\\""'
        else:
            high = int(high)
            if high < low:
                raise GrammarError(f"{path}: maxLength {high} is below minLength {low}")
            body = f'"\\"" {char}{{{low},{high}}} "\\""'
        return self.add(f"string-{low}-{high}" if high is not None else f"string-{low}", body)

    def _date(self) -> str:
        # A real calendar date (what a date parser accepts): 30/31-day months, 29 February only in leap years.
        year = self.add("year", '[0-9]{3} [1-9] | [0-9]{2} [1-9] "0" | [0-9] [1-9] "00" | [1-9] "000"')
        mult4 = '"0" [48] | [2468] [048] | [13579] [26]'
        leap = self.add("leap-year", f'[0-9]{{2}} ({mult4}) | ({mult4}) "00"')
        d28 = '"0" [1-9] | "1" [0-9] | "2" [0-8]'
        body = (
            f'"\\"" ({year} "-" ("0" [13578] | "1" [02]) "-" ({d28} | "29" | "30" | "31")'
            f' | {year} "-" ("0" [469] | "11") "-" ({d28} | "29" | "30")'
            f' | {year} "-02-" ({d28})'
            f' | {leap} "-02-29") "\\""'
        )
        return self.add("date", body)

    def _integer(self, schema: dict[str, Any], path: str) -> str:
        low, high = int_bounds(schema, path)
        return self.add(f"integer-{low}-{high}".replace("None", "x"), int_range_gbnf(low, high))

    def _number(self, schema: dict[str, Any], path: str) -> str:
        minimum = schema.get("minimum", schema.get("exclusiveMinimum"))
        sign = "" if isinstance(minimum, (int, float)) and minimum >= 0 else '"-"? '
        frac = f'("." [0-9]{{1,{MAX_FRAC_DIGITS}}})?'
        exp = "([eE] [-+]? [0-9]{1,3})?"
        return self.add(
            "number" if sign else "unsigned-number", f'{sign}("0" | [1-9] [0-9]{{0,{MAX_INT_DIGITS - 1}}}) {frac} {exp}'
        )

    def _boolean(self, schema: dict[str, Any], path: str) -> str:
        return self.add("boolean", '"true" | "false"')

    def _null(self, schema: dict[str, Any], path: str) -> str:
        return '"null"'

    def _array(self, schema: dict[str, Any], path: str) -> str:
        if isinstance(schema.get("items"), list):
            raise GrammarError(f"{path}: `items` must be one schema (a list of them is prefixItems, not supported)")
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", DEFAULT_MAX_ITEMS))
        if schema.get("items") is False:  # no item admits a value: only the empty array
            if low:
                raise GrammarError(f"{path}: minItems {low} with items false admits no array")
            return '"[]"'
        item = self.value(schema.get("items", True), f"{path}.items")  # no items: any value
        if high < low:
            raise GrammarError(f"{path}: maxItems {high} is below minItems {low}")
        if high == 0:
            return '"[]"'
        more = f'(", " {item}){{{max(low - 1, 0)},{high - 1}}}'
        inner = f"{item} {more}"
        body = f'"[" {inner} "]"' if low else f'"[" ({inner})? "]"'
        return self.add(f"{path}-array", body)


def _merged(base: dict[str, Any], option: Any, path: str) -> Any:
    """``option`` with the keywords of ``base`` (beside a union) added; False when it admits nothing."""
    if option is False or not base:
        return option
    option = {} if option is True else option
    if not isinstance(option, dict):
        raise GrammarError(f"{path}: a schema must be a JSON object (or true), got {option!r}")
    clash = sorted(k for k in set(base) & set(option) if base[k] != option[k])
    if clash:
        raise GrammarError(f"{path}: {clash} both beside the union and in a branch is not supported; merge them into each branch")
    return {**base, **option}


#: Keywords that only constrain one type: a schema without ``type`` that uses them is taken to be of that
#: type, as llama.cpp's converter does (JSON schema would also admit every other type, unconstrained; a
#: grammar that let a model write ``"x"`` for ``{"properties": ...}`` would help no one).
IMPLIED_TYPES = {
    "object": ("properties", "required", "additionalProperties", "propertyNames", "minProperties", "maxProperties"),
    "array": ("items", "minItems", "maxItems"),
    "string": ("minLength", "maxLength", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
}


def with_inferred_type(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """``schema`` with the ``type`` its keywords imply (a list when they imply several), unchanged when it
    has a ``type`` or names only annotations (any value); ``GrammarError`` for keywords no type explains."""
    if "type" in schema or {"anyOf", "oneOf", "const", "enum"} & set(schema):
        return schema
    kinds = [kind for kind, keys in IMPLIED_TYPES.items() if any(k in schema for k in keys)]
    unknown = set(schema) - _ANNOTATIONS - {k for keys in IMPLIED_TYPES.values() for k in keys}
    if unknown:
        raise GrammarError(f"{path}: schema keyword(s) {sorted(unknown)} are not supported")
    if not kinds:
        return schema
    return {**schema, "type": kinds[0] if len(kinds) == 1 else kinds}


def schema_errors_as_grammar_errors(function: Callable[P, T]) -> Callable[P, T]:
    """``function``, with what a malformed schema makes Python raise (``"maxLength": "x"``, a list where a
    schema belongs) turned into a one-line ``GrammarError``."""

    @functools.wraps(function)
    def checked(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise GrammarError(f"the schema is malformed ({type(exc).__name__}: {exc})") from None
        except RecursionError:
            raise GrammarError("the schema nests too deeply") from None

    return checked


@schema_errors_as_grammar_errors
def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A complete grammar whose root is one JSON value matching ``schema``."""
    builder = GbnfBuilder()
    root = builder.value(schema, "value")
    return builder.render(root)


__all__: Sequence[str] = [
    "CHAR_RULE",
    "DEFAULT_MAX_ITEMS",
    "MAX_FRAC_DIGITS",
    "MAX_INT_DIGITS",
    "GbnfBuilder",
    "gbnf_literal",
    "int_bounds",
    "int_range_gbnf",
    "json_literal",
    "schema_errors_as_grammar_errors",
    "schema_to_gbnf",
    "with_inferred_type",
]
