"""Mutated valid calls (``mutation_fuzz.py``, seeded, bounded in count): the parser raises nothing but a
``ParseError``, and every call it returns is supported by the text it read."""

from __future__ import annotations

import pytest

from memgpt.contract.types import FunctionCall
from memgpt.testing.wrapper import sample_functions

from .mutation_fuzz import FUZZ_CASES, fuzz, unsupported

FUNCTIONS = sample_functions()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_call_returned_from_a_mutated_call_is_supported_by_its_text(seed: int) -> None:
    result = fuzz(FUNCTIONS, 4000, seed)
    assert result.crashes == []
    assert result.wrong == [], "\n".join(f"{why}: {text!r}" for text, why in result.wrong[:10])
    assert result.calls > 100 and result.refused > 100  # the mutations both break and spare calls


@pytest.mark.parametrize(("call", "text", "supported"), FUZZ_CASES)
def test_the_support_check_itself(call: FunctionCall, text: str, supported: bool) -> None:
    assert (unsupported(call, text, ()) is None) == supported
