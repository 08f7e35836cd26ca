"""The ``think? call`` grammar of a reasoning model's shape: a bounded free-text section, then the call; the
bound counted with the call so that the whole turn fits the token budget."""

from __future__ import annotations

import json

import pytest

from memgpt.contract.types import CallShape
from memgpt.grammar.call import call_gbnf, call_json_schema, max_call_chars, shape_for_budget, think_chars
from memgpt.testing.wrapper import sample_functions

SAMPLE = sample_functions()
CALL = json.dumps({"function": "send_message", "params": {"inner_thoughts": "", "message": "Hi"}})
OPTIONAL = CallShape(think_open="<think>\n", think_close="\n</think>\n\n", max_think_chars=40, min_inner_thoughts_chars=0)
OPENED = OPTIONAL.model_copy(update={"think_open": ""})  # the prompt opened the block


@pytest.mark.parametrize(
    ("text", "optional", "opened"),
    [
        (CALL, True, False),  # no thinking: only where the block is optional
        (f"<think>\nGreet them.\n</think>\n\n{CALL}", True, False),
        (f"<think>\n\n</think>\n\n{CALL}", True, False),
        (f"Greet them.\n</think>\n\n{CALL}", False, True),
        (f"\n</think>\n\n{CALL}", False, True),
        (f"<think>\n{'x' * 40}\n</think>\n\n{CALL}", True, False),  # the bound itself
        (f"<think>\n{'x' * 41}\n</think>\n\n{CALL}", False, False),  # one over it
        (f"<think>\nuse </b> tags\n</think>\n\n{CALL}", False, False),  # no '<' in the text: no early close
        (f"<think>\nGreet them.\n</think>\n\n<think>\nagain\n</think>\n\n{CALL}", False, False),
    ],
)
def test_the_grammar_admits_a_bounded_think_block_before_the_call(text: str, optional: bool, opened: bool, to_regex) -> None:
    assert bool(to_regex(call_gbnf(SAMPLE, OPTIONAL)).fullmatch(text)) is optional
    assert bool(to_regex(call_gbnf(SAMPLE, OPENED)).fullmatch(text)) is opened


def test_the_grammar_is_valid_for_llama_cpp(llama_accepts) -> None:
    for shape in (OPTIONAL, OPENED):
        llama_accepts(call_gbnf(SAMPLE, shape))


def test_the_json_schema_describes_the_call_alone() -> None:
    assert call_json_schema(SAMPLE, OPTIONAL) == call_json_schema(SAMPLE, OPTIONAL.model_copy(update={"think_close": ""}))


def test_max_call_chars_counts_the_thinking() -> None:
    plain = OPTIONAL.model_copy(update={"think_close": "", "think_open": ""})
    assert think_chars(OPTIONAL) == len("<think>\n") + 40 + len("\n</think>\n\n")
    assert max_call_chars(SAMPLE, OPTIONAL) == max_call_chars(SAMPLE, plain) + think_chars(OPTIONAL)


@pytest.mark.parametrize("budget", [200, 256, 512, 4000])
def test_shape_for_budget_bounds_thinking_and_call_together(budget: int) -> None:
    shape = shape_for_budget(SAMPLE, budget, OPTIONAL.model_copy(update={"max_think_chars": 5000}))
    assert max_call_chars(SAMPLE, shape) <= budget
    assert think_chars(shape) <= max(budget // 3, len("<think>\n\n</think>\n\n"))
    assert shape.thinks


def test_a_budget_the_call_needs_whole_leaves_an_empty_block() -> None:
    # The smallest budget the plain call fits in: the block shrinks to its tags rather than the call failing.
    plain = CallShape(min_inner_thoughts_chars=0)
    small = next(b for b in range(50, 400) if _fits(b, plain))
    shape = shape_for_budget(SAMPLE, small + think_chars(OPENED.model_copy(update={"max_think_chars": 0})), OPENED)
    assert shape.max_think_chars == 0 and shape.thinks


def _fits(budget: int, shape: CallShape) -> bool:
    try:
        shape_for_budget(SAMPLE, budget, shape)
    except Exception:
        return False
    return True
