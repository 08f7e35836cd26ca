"""`memgpt migrate --to postgres`: every agent, message, passage and embedding copied from SQLite with their
times, context lists mapped onto the new ids, the source file byte for byte unchanged, and refusals as
one-line errors."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from memgpt.config import home
from memgpt.contract.types import Message
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.storage import says, user
from memgpt_storage_postgres.storage import PostgresStorage

LAUNCHER = Path(__file__).resolve().parents[3] / "core" / "tests" / "cli" / "scripted_memgpt.py"


def memgpt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )


def fill_sqlite(path: Path) -> None:
    rng = np.random.default_rng(5)
    store = SQLiteStorage(path)
    try:
        for n, name in enumerate(["ana", "bob ü", "empty"]):
            store.save_agent(
                AgentRecord(
                    name=name,
                    settings={"preset": "memgpt_chat", "pending_message": "still waiting"} if n == 0 else {},
                    core_memory={"persona": f"persona {n}", "human": "likes 🍕"},
                    created_at=datetime(2024, 1, n + 1, tzinfo=UTC),
                )
            )
            if name == "empty":
                continue
            at = datetime(2024, 3, 1, 12, 0, n, 123456, tzinfo=UTC)
            stored = store.add_messages(
                name,
                [user(f"message {i} from {name}", at=at) if i % 2 == 0 else says(f"reply {i}", at=at) for i in range(40)]
                + [Message(role="function", name="send_message", content='{"status": "OK"}', created_at=at)],
            )
            record = store.get_agent(name)
            assert record is not None
            record.in_context = [m.id for m in stored[-10:]]  # type: ignore[misc]
            store.save_agent(record)
            dims = 16 if n == 0 else 24
            store.add_passages(name, [f"{name} fact {i}" for i in range(30 + n)], rng.normal(size=(30 + n, dims)),
                               [{"source": f"doc{i}.md"} for i in range(30 + n)])  # fmt: skip
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrate_copies_everything_and_leaves_the_source_alone(postgres_uri: str) -> None:
    db = home() / "memgpt.db"
    fill_sqlite(db)
    before = digest(db)
    result = memgpt("migrate", "--to", "postgres", "--storage-uri", postgres_uri)
    assert result.returncode == 0, result.stderr
    assert "Copied 3 agents, 82 messages and 61 passages; counts match and 40 embeddings read back equal" in result.stdout
    assert digest(db) == before

    source, target = SQLiteStorage(db), PostgresStorage(postgres_uri)
    try:
        assert [r.name for r in target.list_agents()] == [r.name for r in source.list_agents()]
        for theirs in source.list_agents():
            ours = target.get_agent(theirs.name)
            assert ours is not None
            assert (ours.settings, ours.core_memory, ours.created_at, ours.updated_at) == (
                theirs.settings, theirs.core_memory, theirs.created_at, theirs.updated_at,
            )  # fmt: skip
            old = source.recent_messages(theirs.name, 1000)
            new = target.recent_messages(theirs.name, 1000)
            assert [m.model_copy(update={"id": None}) for m in new] == [m.model_copy(update={"id": None}) for m in old]
            # the context list points at the same messages under their new ids
            old_context = source.get_messages(theirs.name, theirs.in_context)
            new_context = target.get_messages(ours.name, ours.in_context)
            assert [m.content for m in new_context] == [m.content for m in old_context]
            assert [m.function_call for m in new_context] == [m.function_call for m in old_context]
            old_passages, new_passages = list(source.iter_passages(theirs.name)), list(target.iter_passages(ours.name))
            assert [(p.text, p.metadata, p.created_at) for p in new_passages] == [
                (p.text, p.metadata, p.created_at) for p in old_passages
            ]
            if old_passages:  # search finds the same passages in the same order
                query = np.ones(16 if theirs.name == "ana" else 24)
                assert [p.text for p in target.search_passages(ours.name, query, limit=10)[0]] == [
                    p.text for p in source.search_passages(theirs.name, query, limit=10)[0]
                ]
            assert target.search_messages(ours.name, "message")[1] == source.search_messages(theirs.name, "message")[1]
    finally:
        source.close()
        target.close()

    again = memgpt("migrate", "--to", "postgres", "--storage-uri", postgres_uri)
    assert again.returncode == 1 and "already has agents named 'ana', 'bob ü', 'empty'" in again.stderr
    assert "Traceback" not in again.stderr


def test_migrate_refusals_are_one_line(postgres_uri: str) -> None:
    for args, code, message in [
        (["--to", "mysql", "--storage-uri", postgres_uri], 2, "copies into 'postgres' only"),
        (["--to", "postgres"], 2, "give --storage-uri"),
        (["--to", "postgres", "--storage-uri", "nonsense"], 2, "is not a database URI"),
        (["--to", "postgres", "--storage-uri", postgres_uri], 1, "no SQLite store at"),
    ]:
        result = memgpt("migrate", *args)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_agent_open_in_a_session_is_not_copied_under_it(postgres_uri: str) -> None:
    from memgpt.locking import AgentLock

    fill_sqlite(home() / "memgpt.db")
    with AgentLock(home(), "bob ü"):
        result = memgpt("migrate", "--to", "postgres", "--storage-uri", postgres_uri)
    assert result.returncode == 1 and "open in another memgpt session" in result.stderr
    target = PostgresStorage(postgres_uri)
    try:
        assert target.list_agents() == []  # refused before anything was copied
    finally:
        target.close()
