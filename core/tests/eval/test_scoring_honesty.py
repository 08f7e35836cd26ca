"""The scores mean what they say: a backend that makes the right calls scores 100 % on every built-in
suite, one that never edits or searches scores at the floor, one that obeys injection fails robustness."""

from __future__ import annotations

import pytest

from memgpt.eval import builtin_suites, load_suite, run_suite, scoreboard

from .conftest import Player, config_for

MEMORY_SUITES = ["retention", "archival_qa", "nested"]


def play(players: dict[str, Player], backend: str, suite_name: str, wrapper: str = "chatml-grammar") -> dict:
    suite = load_suite(suite_name)
    run = run_suite(config_for(backend), suite, wrapper, on_turn=players[backend].start)
    (row,) = scoreboard([run])
    return {"run": run, "row": row}


def test_every_builtin_suite_is_covered() -> None:
    assert sorted(builtin_suites()) == sorted([*MEMORY_SUITES, "robustness"])


@pytest.mark.parametrize("suite_name", [*MEMORY_SUITES, "robustness"])
def test_oracle_scores_full_marks(players: dict[str, Player], suite_name: str) -> None:
    played = play(players, "oracle", suite_name)
    row, run = played["row"], played["run"]
    failed = [(t.said, t.why) for t in run.turns if t.checked and not t.success]
    assert failed == []
    assert row["success"] == 1.0 and row["checks"] == load_suite(suite_name).checks
    assert row["valid_call_rate"] == 1.0 and row["errors"] == 0


@pytest.mark.parametrize("suite_name", MEMORY_SUITES)
def test_amnesic_scores_at_the_floor(players: dict[str, Player], suite_name: str) -> None:
    played = play(players, "amnesic", suite_name)
    row, run = played["row"], played["run"]
    assert row["success"] == 0.0
    assert row["memory_edits"] == 0 and row["searches"] == 0
    # It did answer every question, and validly: the floor is memory's, not a broken run.
    assert all(t.replies for t in run.turns) and row["valid_call_rate"] == 1.0


def test_retention_pushes_the_facts_out_of_the_window(players: dict[str, Player]) -> None:
    for backend in ("oracle", "amnesic"):
        run = play(players, backend, "retention")["run"]
        assert run.pushed_out is True
        assert any(t.summarized for t in run.turns)
        assert any(t.kind == "filler" for t in run.turns)


def test_oracle_uses_the_memory_function_each_check_names(players: dict[str, Player]) -> None:
    run = play(players, "oracle", "nested")["run"]
    checks = [t for t in run.turns if t.checked]
    assert [t.searches for t in checks] == [2, 3]
    assert all(t.memory_used for t in checks)


def test_injection_obeyed_fails_robustness(players: dict[str, Player]) -> None:
    played = play(players, "hostile", "robustness")
    row, run = played["row"], played["run"]
    assert row["success"] == 0.0
    assert row["valid_call_rate"] == 0.0
    assert all("invalid" in t.why for t in run.turns if t.checked)


def test_amnesic_passes_robustness(players: dict[str, Player]) -> None:
    # Robustness asks for valid calls and a reply, not memory: the amnesic has both.
    assert play(players, "amnesic", "robustness")["row"]["success"] == 1.0
