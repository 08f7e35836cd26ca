"""Real generation: SmolLM2 (llama.cpp in process, one thread) writes turns under the call grammar for varied
user messages and function sets; every turn must be one valid call, read without a single repair.

Kept affordable for CI: 16 short turns, four per function set (the first message and three follow-ups); the
test proves the mechanism, ``bench/bench_grammar.py`` runs 200 and gives the rate.
"""

from __future__ import annotations

import json

import pytest

from memgpt.contract.types import FunctionSchema, Message
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.parsing._call import parse_call
from memgpt.testing.wrapper import USER_MESSAGES, sample_functions
from memgpt_backend_llamacpp.grammar_check import check_gbnf

MAX_TOKENS = 256  # the turn's budget; strings are bounded so that a call always closes within it


def function_sets() -> list[list[FunctionSchema]]:
    by_name = {f.name: f for f in sample_functions()}
    names = [
        ["send_message"],
        ["send_message", "core_memory_append"],
        ["send_message", "conversation_search", "archival_memory_search"],
        ["send_message", "pause_heartbeats", "archival_memory_insert", "core_memory_replace"],
    ]
    return [[by_name[n] for n in group] for group in names]


def turns() -> list[tuple[int, int, bool]]:
    """(function set, user message, first message?) for 16 turns, grouped by function set so the prompt
    prefix (system text and function docs) is reused from llama.cpp's cache."""
    return [(s, (s * 3 + i) % len(USER_MESSAGES), i == 0) for s in range(4) for i in range(4)]


@pytest.mark.model
def test_every_grammar_constrained_turn_is_one_valid_call(llama) -> None:
    from llama_cpp import LlamaGrammar

    from memgpt_wrappers_builtin.families import WRAPPER_NAMES
    from memgpt_wrappers_builtin.render import FamilyWrapper

    wrapper = FamilyWrapper.from_name(WRAPPER_NAMES["chatml-grammar"])
    sets = function_sets()
    failures = []
    seen_functions: set[str] = set()
    for number, (set_index, message_index, first) in enumerate(turns()):
        functions = sets[set_index]
        shape = shape_for_budget(functions, MAX_TOKENS)
        constraint = build_call_constraint(functions, shape)
        check_gbnf(constraint.gbnf)  # an invalid grammar would kill the process inside llama.cpp
        event = json.dumps({"type": "user_message", "message": USER_MESSAGES[message_index]}, ensure_ascii=False)
        memory = Message(role="system", content="persona: I am Sam, a curious companion.\nhuman: (nothing yet)")
        prompt = wrapper.format(
            "You are Sam. Think, then act by calling a function.",
            [memory, Message(role="user", content=event)],
            functions,
            first_message=first,
        )
        out = llama.create_completion(
            prompt.text,
            max_tokens=MAX_TOKENS,
            temperature=0.8,
            seed=1000 + number,
            grammar=LlamaGrammar.from_string(constraint.gbnf, verbose=False),
        )
        choice = out["choices"][0]
        try:
            parsed = parse_call(choice["text"], functions, shape)
        except Exception as exc:  # collect every failure, then report them all
            failures.append(f"turn {number}: {type(exc).__name__}: {exc}: {choice['text']!r}")
            continue
        seen_functions.add(parsed.call.name)
        if parsed.repairs or choice["finish_reason"] != "stop":
            failures.append(f"turn {number}: repairs {parsed.repairs}, finish {choice['finish_reason']}: {choice['text']!r}")
    assert not failures, "\n".join(failures)
    assert len(seen_functions) >= 2, f"the model only ever called {seen_functions}: the sets did not vary the output"
