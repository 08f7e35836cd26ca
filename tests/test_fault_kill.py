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
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# Starts each round's child: it imports what the child imports once, then forks a fresh child per round,
# whose stdout is the round's FIFO and stderr the round's log, and kills and reaps it when told. A forked
# child dies by SIGKILL mid-step exactly as a started one does; what it saves is the interpreter start-up
# and the imports, which were most of a round, so the rounds stay many.
ZYGOTE = textwrap.dedent(
    """
    import os, signal, sys
    source = sys.argv[1]
    exec("\\n".join(line for line in source.splitlines() if line.startswith(("import ", "from "))), {})
    from memgpt.plugins import get_registry
    get_registry()
    child = compile(source, "<child>", "exec")
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split("\\t")
        args = [a.rstrip("\\n") for a in args]
        if command == "kill":
            pid = int(args[0])
            os.kill(pid, signal.SIGKILL)
            print(os.waitpid(pid, 0)[1], flush=True)
            continue
        fifo, log, *argv = args
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.dup2(os.open(fifo, os.O_WRONLY), 1)
            sys.argv = ["-c", *argv]
            try:
                exec(child, {"__name__": "__main__"})
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(1)
        print(pid, flush=True)
    """
)


class Zygote:
    """One process that forks the fault suite's children (``ZYGOTE``)."""

    def __init__(self, child_source: str, workdir: Path) -> None:
        self.workdir = workdir
        self.rounds = 0
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, child_source],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    def _ask(self, *fields: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\t".join(fields) + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    @contextmanager
    def child(self, *argv: str) -> Iterator[tuple[int, Iterator[str], Path]]:
        """A forked child running the child source with ``argv``: (pid, its stdout lines, its stderr file)."""
        self.rounds += 1
        fifo = self.workdir / f"round-{self.rounds}.out"
        log = self.workdir / f"round-{self.rounds}.err"
        os.mkfifo(fifo)
        pid = int(self._ask("start", str(fifo), str(log), *argv))
        with fifo.open() as out:
            yield pid, out, log

    def kill(self, pid: int) -> None:
        """SIGKILL the child and reap it."""
        self._ask("kill", str(pid))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.slow
def test_kill_9_mid_step_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "memgpt.db"
    rng = random.Random(20261125)
    zygote = Zygote(CHILD, tmp_path)
    survived = 0
    try:
        for round_ in range(KILLS):
            with zygote.child(str(db)) as (pid, out, log):
                first = out.readline()  # wait for one committed turn so the kill lands mid-loop
                if not first:
                    pytest.fail(f"round {round_}: the child committed nothing: {log.read_text()}")
                time.sleep(rng.uniform(0.0, 0.25))
                zygote.kill(pid)
                committed = [first, *out.read().splitlines()]
            messages, facts = (int(x) for x in committed[-1].split())
            survived += check_round(db, round_, messages, facts)
    finally:
        zygote.close()
    record_figure("kill -9 rounds survived (integrity_check ok, no committed step lost)", f"{survived}/{KILLS}")
    assert survived == KILLS


def check_round(db: Path, round_: int, messages: int, facts: int) -> int:
    """After a kill: the database is whole and holds every step the child reported committed (1 when so)."""
    assert integrity(db) == "ok", f"round {round_}"
    from memgpt.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(db)
    try:
        committed_intact(storage, round_, messages, facts)
    finally:
        storage.close()
    return 1


def committed_intact(storage: Any, round_: int, messages: int, facts: int) -> Any:
    """Every step the child reported committed is in ``storage`` (any engine), and the agent can be rebuilt;
    the agent's record."""
    assert storage.count_messages("crash") >= messages, f"round {round_}: committed messages lost"
    record = storage.get_agent("crash")
    assert record is not None
    assert record.core_memory["human"].count("fact") >= facts
    # the in-context ids all point at stored messages: the agent can be rebuilt
    assert len(storage.get_messages("crash", record.in_context)) == len(record.in_context)
    return record
