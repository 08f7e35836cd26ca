"""Fault suite: kill -9 a process in the middle of agent steps, 50 times, at random points.

The child runs a real agent (real SQLite file, real chatml-grammar wrapper and call grammar) on a
scripted backend so that it spends its time in the loop and in storage, where a kill does damage, not
in a model. After every kill: the database passes ``PRAGMA integrity_check``, every step the child
reported as committed is still there, core memory matches the last committed edit, and the agent
resumes and completes a step.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.figures import record as record_figure

KILLS = 50

CHILD = textwrap.dedent(
    """
    import itertools, sys
    from pathlib import Path
    from memgpt.agent.agent import Agent
    from memgpt.functions.memory import FUNCTIONS
    from memgpt.plugins import get_registry
    from memgpt.session import load_preset, open_wrapper
    from memgpt.storage.base import AgentRecord
    from memgpt.storage.sqlite import SQLiteStorage
    from memgpt.testing.scripted import ScriptedBackend, call

    class Endless(ScriptedBackend):
        def __init__(self):
            super().__init__()
            self.n = itertools.count()

        def complete(self, request):
            i = next(self.n)
            if i % 2 == 0:
                self.script.append(call("core_memory_append", name="human", content=f"fact {i}", request_heartbeat=True))
            else:
                self.script.append(call("send_message", message=f"reply {i}"))
            return super().complete(request)

    storage = SQLiteStorage(Path(sys.argv[1]))
    record = storage.get_agent("crash") or AgentRecord(name="crash", core_memory={"persona": "p", "human": "h"})
    storage.save_agent(record)
    agent = Agent(record, storage=storage, backend=Endless(), wrapper=open_wrapper("chatml-grammar"),
                  system_prompt=load_preset("memgpt_chat").system, functions=FUNCTIONS,
                  build_constraint=get_registry().grammar("call").build, context_window=1_000_000)
    for turn in itertools.count():
        agent.send(f"message {turn}")
        # reported only after the turn committed: the parent may rely on it
        print(storage.count_messages("crash"), agent.core_memory.blocks["human"].count("fact"), flush=True)
    """
)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.slow
def test_kill_9_mid_step_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "memgpt.db"
    rng = random.Random(20261125)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    survived = 0
    for round_ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # wait for one committed turn so the kill lands mid-loop
        if not first:
            pytest.fail(
                f"round {round_}: the child committed nothing (exit {child.wait()}): {child.stderr.read() if child.stderr else ''}"
            )
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        committed = [first, *child.stdout.read().splitlines()]
        messages, facts = (int(x) for x in committed[-1].split())

        assert integrity(db) == "ok", f"round {round_}"
        from memgpt.storage.sqlite import SQLiteStorage

        storage = SQLiteStorage(db)
        try:
            assert storage.count_messages("crash") >= messages, f"round {round_}: committed messages lost"
            record = storage.get_agent("crash")
            assert record is not None
            assert record.core_memory["human"].count("fact") >= facts
            # the in-context ids all point at stored messages: the agent can be rebuilt
            assert len(storage.get_messages("crash", record.in_context)) == len(record.in_context)
        finally:
            storage.close()
        survived += 1
    record_figure("kill -9 rounds survived (integrity_check ok, no committed step lost)", f"{survived}/{KILLS}")
    assert survived == KILLS
