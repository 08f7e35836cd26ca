"""The vendored JSON-Schema-Test-Suite (``data/json_schema_test_suite``), llama.cpp's own grammar matcher, and
the layout our grammars print JSON in: shared by ``test_schema_suite.py`` and ``bench/bench_schema_suite.py``.

``LlamaMatcher`` runs llama.cpp's grammar sampler (the code that constrains generation) over a text's
tokens: a token the grammar refuses gets a logit of -inf from ``llama_sampler_apply``; the text matches
when every token is allowed and the end-of-generation token is allowed after the last one. It needs a
vocabulary, so it loads SmolLM2's (vocabulary only: no weights, well under a second).
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE = Path(__file__).parent / "data" / "json_schema_test_suite"


@dataclass(frozen=True)
class SuiteCase:
    """One schema of the suite with its instances."""

    keyword: str  # the file it comes from
    description: str
    schema: Any
    tests: tuple[tuple[str, Any, bool], ...]  # (description, instance, valid)

    @property
    def id(self) -> str:
        return f"{self.keyword}: {self.description}"


def suite_cases() -> list[SuiteCase]:
    cases = []
    for path in sorted(SUITE.glob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")):
            tests = tuple((t["description"], t["data"], t["valid"]) for t in group["tests"])
            cases.append(SuiteCase(path.stem, group["description"], group["schema"], tests))
    return cases


# ---- the layout: json.dumps, keys in the order the grammar writes them ----


def layouts(value: Any, schema: Any) -> set[str]:
    """Every text the grammar of ``schema`` could lay ``value`` out as (one per branch of a union)."""
    from memgpt.errors import GrammarError
    from memgpt.grammar.gbnf import _merged, with_inferred_type

    if not isinstance(schema, dict):
        return {_dumps(value)}
    for member in ([schema["const"]] if "const" in schema else []) + list(schema.get("enum", [])):
        if same(member, value):
            return {_dumps(member)}  # the literal as the schema writes it (its key order)
    out: set[str] = set()
    for key in ("anyOf", "oneOf"):
        base = {k: v for k, v in schema.items() if k != key}
        for option in schema.get(key, []):
            try:
                out |= layouts(value, _merged(base, option, "value"))
            except GrammarError:
                out |= layouts(value, option)
    if out:
        return out
    try:
        schema = with_inferred_type({k: v for k, v in schema.items() if k not in ("$schema", "uniqueItems")}, "value")
    except GrammarError:
        pass
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if isinstance(value, dict):
        return {_object_layout(value, schema)}
    if isinstance(value, list):
        items = schema.get("items", {})
        return {"[" + ", ".join(sorted(layouts(v, items))[0] for v in value) + "]"}
    if isinstance(value, float) and value.is_integer() and "integer" in kinds and "number" not in kinds:
        return {str(int(value))}  # JSON schema's 1.0 is an integer; the grammar writes it as one
    return {_dumps(value)}


def _object_layout(value: dict[str, Any], schema: dict[str, Any]) -> str:
    properties = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required", []))
    declared = list(properties)
    first = next((i for i, k in enumerate(declared) if k in required), None)
    if first is not None:  # the first required key leads (see GbnfBuilder._object)
        declared = [declared[first], *declared[:first], *declared[first + 1 :]]
    extra = schema.get("additionalProperties", True)
    ordered = [k for k in declared if k in value] + [k for k in value if k not in properties]
    parts = []
    for k in ordered:
        sub = properties.get(k, extra)
        parts.append(f"{_dumps(k)}: {sorted(layouts(value[k], sub))[0]}")
    return "{" + ", ".join(parts) + "}"


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1, and objects compare without order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b)


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def in_inferred_type(value: Any, schema: Any) -> bool:
    """False when ``value`` (or a value inside it) is of a type that a schema *without* ``type`` admits in
    JSON schema but not in the type its keywords imply: the one narrowing inference makes on purpose (as
    llama.cpp's converter does; e.g. ``12`` for ``{"properties": ...}``)."""
    from memgpt.errors import GrammarError
    from memgpt.grammar.gbnf import with_inferred_type

    if not isinstance(schema, dict):
        return True
    options = schema.get("anyOf", schema.get("oneOf"))
    if options is not None:
        return any(in_inferred_type(value, option) for option in options)
    if "type" not in schema and not {"const", "enum"} & set(schema):
        try:
            kinds = with_inferred_type(schema, "value").get("type")
        except GrammarError:
            return True
        if kinds is not None:
            kinds = kinds if isinstance(kinds, list) else [kinds]
            kind = json_type(value)
            if kind not in kinds and not (kind == "integer" and "number" in kinds):
                return False
    if isinstance(value, dict):
        properties = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
        return all(in_inferred_type(v, properties.get(k, schema.get("additionalProperties", True))) for k, v in value.items())
    if isinstance(value, list):
        return all(in_inferred_type(v, schema.get("items", True)) for v in value)
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---- llama.cpp's matcher ----


class LlamaMatcher:
    """``matches(grammar, texts)``: llama.cpp's verdict on each text under ``grammar``."""

    def __init__(self, model_path: Path) -> None:
        from llama_cpp import llama_cpp as C

        self.C = C
        C.llama_backend_init()
        params = C.llama_model_default_params()
        params.vocab_only = True
        self.model = C.llama_model_load_from_file(str(model_path).encode("utf-8"), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not read the vocabulary of {model_path}")
        self.vocab = C.llama_model_get_vocab(self.model)
        self.eos = int(C.llama_vocab_eos(self.vocab))
        self.data = (C.llama_token_data * 1)()
        self.array = C.llama_token_data_array(data=self.data, size=1, selected=-1, sorted=False)

    def tokens(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        out = (self.C.llama_token * capacity)()
        n = self.C.llama_tokenize(self.vocab, data, len(data), out, capacity, False, False)
        assert n >= 0, f"could not tokenize {text!r}"
        return list(out[:n])

    def _allowed(self, sampler: Any, token: int) -> bool:
        self.data[0].id, self.data[0].logit, self.data[0].p = token, 0.0, 0.0
        self.array.data = ctypes.cast(self.data, type(self.array.data))
        self.array.size, self.array.selected, self.array.sorted = 1, -1, False
        self.C.llama_sampler_apply(sampler, ctypes.byref(self.array))
        return self.data[0].logit != float("-inf")

    def matches(self, grammar: str, texts: list[str]) -> list[bool]:
        sampler = self.C.llama_sampler_init_grammar(self.vocab, grammar.encode("utf-8"), b"root")
        assert sampler, "llama.cpp refused the grammar"
        verdicts = []
        try:
            for text in texts:
                self.C.llama_sampler_reset(sampler)
                verdicts.append(self._match(sampler, text))
        finally:
            self.C.llama_sampler_free(sampler)
        return verdicts

    def _match(self, sampler: Any, text: str) -> bool:
        for token in self.tokens(text):
            if not self._allowed(sampler, token):
                return False
            self.C.llama_sampler_accept(sampler, token)
        return self._allowed(sampler, self.eos)

    def close(self) -> None:
        self.C.llama_model_free(self.model)


def iter_valid(case: SuiteCase) -> Iterator[tuple[str, Any]]:
    for description, instance, valid in case.tests:
        if valid:
            yield description, instance
