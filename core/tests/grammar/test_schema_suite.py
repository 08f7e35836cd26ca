"""The official JSON-Schema-Test-Suite against our JSON schema → GBNF emitter, judged by llama.cpp's own
grammar matcher (see ``schema_suite.py``):

- every schema the emitter refuses is refused with a ``GrammarError`` (never another exception);
- every grammar it emits is accepted by llama.cpp's parser;
- every *valid* instance of an accepted schema, laid out as the grammar writes JSON, is accepted by the
  grammar, except where a schema without ``type`` is narrowed to the type its keywords imply
  (``in_inferred_type``: ``12`` is valid for ``{"properties": ...}``, and not admitted, on purpose) and
  the narrowings listed in ``NARROWED`` below, each with its reason.

How far invalid instances are refused, and how llama.cpp's own converter does on the same cases, is a
comparison, not a pass/fail: ``bench/bench_schema_suite.py`` reports both per keyword.
"""

from __future__ import annotations

from typing import Any

import pytest

from memgpt.errors import GrammarError
from memgpt.grammar.gbnf import schema_to_gbnf

from .schema_suite import LlamaMatcher, SuiteCase, in_inferred_type, iter_valid, layouts, suite_cases

CASES = suite_cases()

#: (schema id, instance description) → why the grammar does not admit that valid instance.
NARROWED: dict[tuple[str, str], str] = {
    ("format: date format", "invalid date string is only an annotation by default"): (
        "format date is enforced as a real calendar date (the parser's validator checks formats too); the suite "
        "treats format as an annotation by default"
    ),
    ("uniqueItems: uniqueItems=false validation", "unique array of nested objects is valid"): "nests deeper than ANY_DEPTH",
    ("uniqueItems: uniqueItems=false validation", "non-unique array of nested objects is valid"): "nests deeper than ANY_DEPTH",
}


@pytest.fixture(scope="module")
def matcher(smollm2) -> Any:
    matcher = LlamaMatcher(smollm2)
    yield matcher
    matcher.close()


def test_the_vendored_suite_is_complete() -> None:
    assert len(CASES) == 173
    assert sum(len(c.tests) for c in CASES) > 600


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_schema_is_compiled_exactly_or_refused_with_a_grammar_error(case: SuiteCase, matcher: Any) -> None:
    from memgpt_backend_llamacpp.grammar_check import check_gbnf

    try:
        grammar = schema_to_gbnf(case.schema)
    except GrammarError as exc:
        assert str(exc), "a refusal must say why"
        return
    check_gbnf(grammar)
    valid = [(d, v) for d, v in iter_valid(case) if (case.id, d) not in NARROWED and in_inferred_type(v, case.schema)]
    texts = [sorted(layouts(v, case.schema)) for _, v in valid]
    flat = [t for options in texts for t in options]
    verdicts = iter(matcher.matches(grammar, flat))
    refused = []
    for (description, _), options in zip(valid, texts, strict=True):
        if not any([next(verdicts) for _ in options]):
            refused.append(f"{description}: {options[0]}")
    assert not refused, f"valid instances refused by the grammar:\n{grammar}\n" + "\n".join(refused)


def test_the_matcher_judges_like_llama_cpp_samples(matcher: Any) -> None:
    grammar = 'root ::= "{" ("\\"a\\": " [0-9]+)? "}"\n'
    assert matcher.matches(grammar, ["{}", '{"a": 12}', '{"a": }', '{"a": 1', "{} ", "ü"]) == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    # Multi-byte characters split across tokens are still whole characters to the grammar.
    assert matcher.matches('root ::= [^"]{2}\n', ["ü☃", "😀😀", "abc"]) == [True, True, False]
