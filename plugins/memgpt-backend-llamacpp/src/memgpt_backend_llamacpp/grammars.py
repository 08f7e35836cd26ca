"""Constraints → llama.cpp grammar samplers, validated first and compiled once per grammar text.

The agent's function set rarely changes, so the same call grammar arrives on every step: it is parsed once,
kept as a pristine sampler, and each request gets a clone (a copy of the parsed rules, no parsing).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from llama_cpp import llama_cpp as C
from llama_cpp.llama_grammar import json_schema_to_gbnf

from memgpt.plugin import Constraint, ConstraintKind, GrammarError
from memgpt_backend_llamacpp.grammar_check import check_gbnf

# llama-cpp-python's converter lets raw control characters into strings (invalid JSON); llama.cpp's own
# converter excludes them. Patch that one rule of its output.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A JSON schema as GBNF: core's exact fixed-layout emitter, else llama-cpp-python's general converter."""
    exact: Callable[[dict[str, Any]], str] | None
    try:
        from memgpt.grammar.gbnf import schema_to_gbnf as exact
    except ImportError:
        exact = None
    if exact is not None:
        try:
            return exact(schema)
        except GrammarError:
            pass  # outside core's subset: the general converter may still express it
    try:
        return json_schema_to_gbnf(json.dumps(schema)).replace(_LOOSE_CHAR, _STRICT_CHAR)
    except Exception as exc:  # the converter raises bare ValueError/KeyError/... for what it cannot express
        raise GrammarError(f"cannot turn the JSON schema into a grammar: {exc!r}; simplify the schema or send GBNF") from exc


class GrammarCache:
    """Parsed grammars for one model's vocabulary, least-recently-used first."""

    def __init__(self, vocab: Any, size: int = 16) -> None:
        self._vocab = vocab
        self._size = size
        self._pristine: OrderedDict[str, Any] = OrderedDict()

    def gbnf_for(self, constraint: Constraint) -> tuple[str, ConstraintKind]:
        """The GBNF text that enforces ``constraint`` (GBNF preferred when it carries both)."""
        if constraint.gbnf is not None:
            return constraint.gbnf, "gbnf"
        if constraint.json_schema is not None:
            return schema_to_gbnf(constraint.json_schema), "json_schema"
        raise GrammarError("the constraint carries neither GBNF nor a JSON schema")

    def sampler(self, text: str) -> Any:
        """A fresh grammar sampler for ``text``; the caller frees it with ``llama_sampler_free``."""
        pristine = self._pristine.get(text)
        if pristine is None:
            check_gbnf(text)  # never hand llama.cpp a grammar it would choke on
            pristine = C.llama_sampler_init_grammar(self._vocab, text.encode("utf-8"), b"root")
            if not pristine:
                # Syntax passed, so it is something only the vocabulary can refuse (a token reference).
                raise GrammarError("llama.cpp rejects the grammar for this model (a token reference it does not know?)")
            self._pristine[text] = pristine
            while len(self._pristine) > self._size:
                C.llama_sampler_free(self._pristine.popitem(last=False)[1])
        else:
            self._pristine.move_to_end(text)
        return C.llama_sampler_clone(pristine)

    def close(self) -> None:
        while self._pristine:
            C.llama_sampler_free(self._pristine.popitem()[1])
