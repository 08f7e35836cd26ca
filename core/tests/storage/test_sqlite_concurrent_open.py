"""Several processes opening the same brand-new database at once: every one of them gets a working store."""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from memgpt.storage import _schema
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

PROCESSES = 6
ROUNDS = 8


def open_each_round(paths: list[Path], barrier: Barrier, index: int, errors: multiprocessing.Queue[str]) -> None:
    """In a child: for each round, wait for the others, then open that round's fresh file and use it."""
    for path in paths:
        barrier.wait(timeout=30)
        try:
            store = SQLiteStorage(path)
            try:
                store.save_agent(AgentRecord(name=f"agent-{index}"))
            finally:
                store.close()
        except BaseException:
            errors.put(f"{path.parent.name}, process {index}: {traceback.format_exc(limit=3)}")


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process (fast: no re-import per child)")
def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    paths = [tmp_path / f"round-{n}" / "memgpt.db" for n in range(ROUNDS)]
    barrier = context.Barrier(PROCESSES)
    errors = context.Queue()
    children = [context.Process(target=open_each_round, args=(paths, barrier, i, errors)) for i in range(PROCESSES)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, "\n".join(failures)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    for path in paths:
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(_schema.MIGRATIONS),)]
            assert conn.execute("SELECT count(*) FROM agents").fetchone() == (PROCESSES,)
