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

import numpy as np
import pytest

from memgpt.errors import StorageError
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

from .conftest import user


def outside_view(path: Path) -> tuple[int, int]:
    """(messages, passages) as another connection sees them."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0], conn.execute(
            "SELECT count(*) FROM passages"
        ).fetchone()[0]


def test_writes_commit_together(store: SQLiteStorage, db_path: Path) -> None:
    with store.transaction():
        store.add_messages("sam", [user("one"), user("two")])
        store.add_passages("sam", ["p"], np.ones((1, 4)))
        record = store.get_agent("sam")
        assert record is not None
        record.in_context = [1, 2]
        store.save_agent(record)
        assert outside_view(db_path) == (0, 0)  # nothing visible before the commit
    assert outside_view(db_path) == (2, 1)
    assert store.get_agent("sam").in_context == [1, 2]  # type: ignore[union-attr]


def test_an_exception_rolls_everything_back(store: SQLiteStorage) -> None:
    with pytest.raises(KeyboardInterrupt), store.transaction():
        store.add_messages("sam", [user("lost")])
        store.add_passages("sam", ["lost"], np.ones((1, 4)))
        store.save_agent(AgentRecord(name="sam", core_memory={"human": "lost"}))
        store.save_agent(AgentRecord(name="new"))
        raise KeyboardInterrupt  # Ctrl-C mid-step
    assert store.count_messages("sam") == 0 and store.count_passages("sam") == 0
    assert store.get_agent("sam").core_memory == {}  # type: ignore[union-attr]
    assert store.get_agent("new") is None


def test_nested_blocks_join_the_outer_transaction(store: SQLiteStorage, db_path: Path) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.add_messages("sam", [user("inner")])
        assert outside_view(db_path) == (0, 0)  # the inner block did not commit on its own
        raise RuntimeError
    assert store.count_messages("sam") == 0


def test_a_failed_inner_block_undoes_only_its_own_writes(store: SQLiteStorage) -> None:
    with store.transaction():
        store.add_messages("sam", [user("outer")])
        with pytest.raises(StorageError), store.transaction():
            store.add_messages("sam", [user("inner")])
            store.add_messages("ghost", [user("fails")])
        store.add_messages("sam", [user("outer again")])
    assert [m.content for m in store.recent_messages("sam", 10)] == [user("outer").content, user("outer again").content]


def test_each_method_alone_is_atomic(store: SQLiteStorage) -> None:
    with pytest.raises(StorageError):
        store.add_messages("sam", [user("fine"), user("fine too").model_copy(update={"id": 7})])
    assert store.count_messages("sam") == 0


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
from memgpt.llm.types import Message
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
