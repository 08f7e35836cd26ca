"""The original MemGPT's own parser test strings (``data/memgpt_original_cases.json``, see its ``source``):
each yields the call the original expected, or a clear ``ParseError`` where noted, never anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memgpt import errors
from memgpt.parsing._call import parse_call
from memgpt.testing.wrapper import sample_functions

FUNCTIONS = sample_functions()
CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "memgpt_original_cases.json").read_text(encoding="utf-8")
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_original_memgpt_parser_cases(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(getattr(errors, case["error"]), match=case.get("match")):
            parse_call(case["text"], FUNCTIONS)
        return
    call = parse_call(case["text"], FUNCTIONS).call
    assert call.name == case["expect"]["function"]
    assert call.arguments == case["expect"]["arguments"]
