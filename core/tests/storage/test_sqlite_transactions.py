"""transaction(): all or nothing, nesting joins the outer one, and kill -9 cannot tear a step."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memgpt.storage.sqlite import SQLiteStorage

from .conftest import user


def outside_view(path: Path) -> tuple[int, int]:
    """(messages, passages) as another connection sees them."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0], conn.execute(
            "SELECT count(*) FROM passages"
        ).fetchone()[0]


def test_another_thread_waits_for_the_transaction(store: SQLiteStorage) -> None:
    seen: list[int] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        seen.append(store.count_messages("sam"))

    with store.transaction():
        store.add_messages("sam", [user("a")])
        thread = threading.Thread(target=reader)
        thread.start()
        started.wait()
        time.sleep(0.05)
        store.add_messages("sam", [user("b")])
    thread.join()
    assert seen == [2]  # never the half-written state


WRITER = r"""
import sys
import numpy as np
from memgpt.contract.types import Message
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

store = SQLiteStorage(sys.argv[1])
while True:
    with store.transaction():
        record = store.get_agent("sam")
        if record is None:
            record = AgentRecord(name="sam")
            store.save_agent(record)
        step = int(record.core_memory.get("steps", "0")) + 1
        print("begin", step, flush=True)
        stored = store.add_messages("sam", [Message(role="user", content=f"step {step} message {i}") for i in range(200)])
        store.add_passages("sam", [f"step {step}"] * 4, np.random.rand(4, 64))
        record.in_context = record.in_context + [m.id for m in stored]
        record.core_memory = {"steps": str(step)}
        store.save_agent(record)
    print("commit", step, flush=True)
"""


def kill_inside_a_transaction(db_path: Path, commits: int) -> int:
    """Run the writer, SIGKILL it right after it reports a BEGIN following ``commits`` commits; the step
    it was writing."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        what, step = line.split()
        seen += what == "commit"
        if what == "begin" and seen >= commits:
            os.kill(proc.pid, signal.SIGKILL)  # it is writing 200 messages now
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return int(step)


@pytest.mark.parametrize("rounds", [1, 2])
def test_kill_9_mid_transaction_leaves_the_previous_step(db_path: Path, rounds: int) -> None:
    for _ in range(rounds):  # round 2: a second writer resumes on the killed file, and is killed too
        torn = kill_inside_a_transaction(db_path, commits=3)

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteStorage(db_path)
    try:
        record = store.get_agent("sam")
        assert record is not None
        steps = int(record.core_memory["steps"])
        assert steps in (torn - 1, torn)  # torn - 1 unless the kill came after its COMMIT
        # every part of each step landed, and nothing of a torn step did
        assert store.count_messages("sam") == len(record.in_context) == 200 * steps
        assert store.count_passages("sam") == 4 * steps
        assert [m.id for m in store.recent_messages("sam", 200 * steps)] == record.in_context
        store.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES('integrity-check')")  # raises if torn
        of_torn = store.conn.execute("SELECT count(*) FROM messages WHERE content LIKE ?", (f"step {torn} message %",))
        assert of_torn.fetchone()[0] == (200 if steps == torn else 0)
    finally:
        store.close()
