"""bench/compare's figures on hand-made runs (no model, no server): the outcome columns for both sides, and
results files from before those columns."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "compare"))

import report
from llama_server import Exchange
from results import Run, Turn

PROMPT = (
    "<|im_start|>system\nFunctions: send_message, core_memory_append, conversation_search, archival_memory_insert."
    "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
)


def _exchange(content: str, status: int = 200) -> Exchange:
    return Exchange(started=0.0, seconds=1.0, prompt=PROMPT, content=content, grammar=True, prompt_n=100, cache_n=0,
                    predicted_n=20, stopping_word="", status=status)  # fmt: skip


def _call(function: str, thoughts: str = "", **params: str) -> str:
    return json.dumps({"function": function, "params": {"inner_thoughts": thoughts, **params}})


def _theirs() -> Run:
    turns = [
        # a search, then a reply: answered
        Turn(
            "a",
            2.0,
            exchanges=[
                _exchange(_call("conversation_search", "look", query="x")),
                _exchange(_call("send_message", "ok", message="hi")),
            ],
        ),
        # broken JSON then a memory edit, cut off by the driver: nothing said
        Turn(
            "b",
            9.0,
            exchanges=[_exchange('{"function": "send_mess'), _exchange(_call("core_memory_append", name="human", content="c"))],
            aborted="stopped after 12 completions",
        ),
        # a request the server refused: not a completion
        Turn("c", 0.1, exchanges=[_exchange("", status=400)]),
    ]
    return Run(label="pymemgpt 0.3.25 llamacpp chatml", side="theirs", ready_seconds=5.0, turns=turns)


def _ours_turn(seconds: float, answered: bool, stopped_by: str | None, reply_step: bool, *counts: int) -> Turn:
    calls, thoughts, memory_edits, searches = counts
    return Turn(
        "m",
        seconds,
        evaluated_tokens=50,
        reported_call=True,
        answered=answered,
        stopped_by=stopped_by,
        reply_step=reply_step,
        calls=calls,
        thoughts=thoughts,
        memory_edits=memory_edits,
        searches=searches,
    )


def _ours() -> Run:
    turns = [
        _ours_turn(1.0, True, None, False, 1, 1, 0, 0),  # replied at once
        _ours_turn(2.0, False, "repeat", False, 2, 1, 0, 2),  # searched twice, stopped by the repeat guard: nothing said
        _ours_turn(3.0, True, "repeat", True, 3, 3, 2, 0),  # the guard stopped it, the reply step answered
    ]
    return Run(label="ours llamacpp-embedded chatml-grammar", side="ours", ready_seconds=1.0, turns=turns)


def test_theirs_outcome_from_the_judge() -> None:
    f = report.figures(_theirs(), (900.0, 850.0))
    assert (f.answered, f.guard_stopped, f.reply_step_turns) == (1, 1, None)
    assert (f.calls_with_thoughts, f.calls_run, f.memory_edits, f.searches) == (2, 3, 1, 1)
    assert (f.valid_turns, f.valid_calls, f.call_attempts, f.refused, f.aborted) == (2, 3, 4, 1, 1)
    assert f.outcome_source == "judge"


def test_ours_outcome_from_its_own_report() -> None:
    f = report.figures(_ours(), None)
    assert (f.answered, f.guard_stopped, f.reply_step_turns) == (2, 1, 1)
    assert (f.calls_with_thoughts, f.calls_run, f.memory_edits, f.searches) == (5, 6, 2, 2)
    assert f.valid_turns == 3 and f.outcome_source == "self"


def test_table_leads_with_turns_answered_and_ratios() -> None:
    rows = [report.figures(_theirs(), None), report.figures(_ours(), None)]
    lines = report.table(rows).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[:3] == ["system", "turns answered", "turns stopped by a guard, nothing said"]
    assert head.index("turns with a valid call") > head.index("searches")
    theirs_row = [c.strip() for c in lines[2].strip("|").split("|")]
    ours_row = [c.strip() for c in lines[3].strip("|").split("|")]
    assert len(theirs_row) == len(ours_row) == len(head)
    assert theirs_row[1:7] == ["1/3 ²", "1/3", "—", "2/3", "1", "1"]
    assert ours_row[1:7] == ["2/3", "1/3", "1/3", "5/6", "2", "2"]
    ratios = report.ratios(rows, [(rows[1].label, rows[0].label)]).splitlines()
    assert ratios[0].startswith("| ours / theirs | turns answered |")
    assert ratios[2].split("|")[2].strip() == "2.00"


def test_results_without_outcome_fields_still_read() -> None:
    old = asdict(_ours())
    for turn in old["turns"]:
        for name in ("answered", "stopped_by", "reply_step", "calls", "thoughts", "memory_edits", "searches"):
            del turn[name]
    run = Run.from_dict(json.loads(json.dumps(old)))
    f = report.figures(run, None)
    assert f.answered is None and f.calls_run is None and f.valid_turns == 3
    row = report.table([f]).splitlines()[2]
    assert row.startswith("| ours llamacpp-embedded chatml-grammar | — | — | — |")
    # pymemgpt's outcome comes from its recorded completions, so old files of theirs have it
    assert report.figures(Run.from_dict(json.loads(json.dumps(asdict(_theirs())))), None).answered == 1
