"""`memgpt eval` on real generation: SmolLM2-135M in process (llamacpp-embedded, MEMGPT_THREADS or 1 thread),
the retention suite with chatml-grammar, from the console script to the printed scoreboard. The score of a
135M model is low and is not asserted; that every planned turn ran, validly or not, and was measured, is.
It takes about a minute of CPU on one thread (the generous timeout is for a machine shared with other work)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memgpt.eval import load_suite


def test_retention_on_smollm2_prints_a_scoreboard(smollm2: Path, threads: int, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "memgpt", "eval", "--wrappers", "chatml-grammar", "--suite", "retention",
               "--model", str(smollm2), "--backend", "llamacpp-embedded", "--out", str(out), "--no-chart"]  # fmt: skip
    env = {**os.environ, "MEMGPT_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    header, row, *rest = done.stdout.splitlines()
    assert header.startswith("wrapper\tsuite\tsuccess\tvalid calls")
    fields = row.split("\t")
    assert fields[:2] == ["chatml-grammar", "retention"] and fields[2].endswith("/3)")
    assert f"results: {out}" in rest
    document = json.loads(out.read_text())
    (run,) = document["runs"]
    planned = sum(len(s.turns) for s in load_suite("retention").sessions)
    turns = run["turns"]
    assert len(turns) >= planned and sum(t["checked"] for t in turns) == 3
    assert all(t["error"] is None for t in turns), [t["error"] for t in turns]
    # Real generations were made and measured on every turn.
    assert all(t["attempts"] >= 1 and t["prompt_tokens"] > 0 and t["seconds"] > 0 for t in turns)
    (board,) = document["scoreboard"]
    assert 0.0 <= board["valid_call_rate"] <= 1.0 and board["prompt_tokens_per_turn"] > 500
