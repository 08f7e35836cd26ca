"""Agents round-trip exactly; the file, schema and errors behave as documented."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from memgpt.errors import StorageError
from memgpt.storage.base import AgentRecord, Storage
from memgpt.storage.sqlite import SQLiteStorage

from .conftest import says, user


def test_implements_the_storage_protocol(store: SQLiteStorage) -> None:
    assert isinstance(store, Storage)


def test_file_is_private_and_in_wal_mode(store: SQLiteStorage, db_path: Path) -> None:
    store.add_messages("sam", [user("hello")])  # something in the WAL
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db_path.parent).st_mode) == 0o700
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists() and stat.S_IMODE(os.stat(wal).st_mode) == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_agent_record_round_trips_exactly(store: SQLiteStorage) -> None:
    created = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=-8)))
    record = AgentRecord(
        name="ana",
        settings={"preset": "memgpt_chat", "model": {"context_window": 8192, "wrapper": "chatml"}, "flags": [1, None, True]},
        core_memory={"persona": "I am Ana. 🌱", "human": 'Name: Bob\nLikes: "quotes" and ünïcode'},
        in_context=[3, 1, 2],
        created_at=created,
        updated_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
    )
    store.save_agent(record)
    loaded = store.get_agent("ana")
    assert loaded == record
    assert loaded is not None and loaded.created_at.tzinfo == UTC
    assert loaded.created_at == datetime(2024, 3, 1, 7, 59, 59, 123456, tzinfo=UTC)


def test_list_agents_sorted_and_get_missing(store: SQLiteStorage) -> None:
    store.save_agent(AgentRecord(name="bob"))
    store.save_agent(AgentRecord(name="alice"))
    assert [r.name for r in store.list_agents()] == ["alice", "bob", "sam"]
    assert store.get_agent("nobody") is None


def test_saving_again_updates_without_losing_memory(store: SQLiteStorage) -> None:
    store.add_messages("sam", [user("keep me")])
    store.add_passages("sam", ["a passage"], np.ones((1, 4)))
    record = store.get_agent("sam")
    assert record is not None
    record.core_memory["human"] = "changed"
    store.save_agent(record)  # an upsert: INSERT OR REPLACE would have cascade-deleted the messages
    assert store.get_agent("sam").core_memory == {"human": "changed"}  # type: ignore[union-attr]
    assert store.count_messages("sam") == 1 and store.count_passages("sam") == 1


def test_delete_agent_removes_its_messages_and_passages(store: SQLiteStorage) -> None:
    store.save_agent(AgentRecord(name="other"))
    store.add_messages("sam", [user("pizza for sam"), says("noted, pizza")])
    store.add_messages("other", [user("pizza for other")])
    store.add_passages("sam", ["sam's fact"], np.ones((1, 4)))
    store.add_passages("other", ["other's fact"], np.ones((1, 4)))
    assert store.search_passages("sam", np.ones(4))[1] == 1  # load the cached index too

    assert store.delete_agent("sam") is True
    assert store.get_agent("sam") is None
    assert store.count_messages("sam") == 0 and store.count_passages("sam") == 0
    assert store.search_messages("sam", "pizza") == ([], 0)
    assert store.search_passages("sam", np.ones(4)) == ([], 0)
    # the FTS index forgot sam's rows, and the other agent is untouched
    assert store.conn.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'pizza'").fetchone()[0] == 1
    assert store.search_messages("other", "pizza")[1] == 1 and store.count_passages("other") == 1
    assert store.delete_agent("sam") is False


def test_memory_of_an_unknown_agent_is_refused(store: SQLiteStorage) -> None:
    with pytest.raises(StorageError, match=r"no agent named 'ghost'.*save_agent"):
        store.add_messages("ghost", [user("hi")])
    with pytest.raises(StorageError, match="no agent named 'ghost'"):
        store.add_passages("ghost", ["x"], np.ones((1, 4)))


def test_reopening_keeps_everything(db_path: Path, store: SQLiteStorage) -> None:
    [stored] = store.add_messages("sam", [user("persisted")])
    store.add_passages("sam", ["persisted passage"], np.ones((1, 4)))
    store.close()
    again = SQLiteStorage(db_path)
    try:
        assert again.get_messages("sam", [stored.id]) == [stored]  # type: ignore[list-item]
        assert [p.text for p in again.iter_passages("sam")] == ["persisted passage"]
    finally:
        again.close()


def test_corrupt_file_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "memgpt.db"
    path.write_bytes(b"this is not sqlite at all " * 100)
    with pytest.raises(StorageError) as info:
        SQLiteStorage(path)
    message = str(info.value)
    assert str(path) in message and "move it aside" in message


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match=str(blocker)):
        SQLiteStorage(blocker / "memgpt.db")  # its "directory" is a file
    with pytest.raises(StorageError, match="not a file"):
        SQLiteStorage(tmp_path)


def test_a_closed_store_says_so(store: SQLiteStorage) -> None:
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.list_agents()


def test_newer_schema_is_refused(db_path: Path, store: SQLiteStorage) -> None:
    store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError, match=r"schema version 99.*upgrade memgpt"):
        SQLiteStorage(db_path)


def test_migration_hook_runs_new_migrations_once(db_path: Path, store: SQLiteStorage) -> None:
    store.add_messages("sam", [user("before the migration")])
    store.close()
    calls: list[int] = []

    def add_tags(db: object) -> None:
        calls.append(1)
        db.execute("ALTER TABLE agents ADD COLUMN tags TEXT")  # type: ignore[attr-defined]

    class Newer(SQLiteStorage):
        migrations = (*SQLiteStorage.migrations, add_tags)

    for _ in range(2):
        newer = Newer(db_path)
        assert newer.conn.execute("SELECT version FROM schema_version").fetchone()[0] == 2
        assert "tags" in newer.db["agents"].columns_dict
        assert newer.count_messages("sam") == 1
        newer.close()
    assert calls == [1]


def test_failed_migration_leaves_the_previous_version(db_path: Path, store: SQLiteStorage) -> None:
    store.close()

    def broken(db: object) -> None:
        db.execute("ALTER TABLE agents ADD COLUMN half_done TEXT")  # type: ignore[attr-defined]
        raise RuntimeError("migration bug")

    class Broken(SQLiteStorage):
        migrations = (*SQLiteStorage.migrations, broken)

    with pytest.raises(RuntimeError, match="migration bug"):
        Broken(db_path)
    reopened = SQLiteStorage(db_path)
    try:
        assert reopened.conn.execute("SELECT version FROM schema_version").fetchone()[0] == 1
        assert "half_done" not in reopened.db["agents"].columns_dict
    finally:
        reopened.close()


def test_damaged_pages_are_a_storage_error(db_path: Path, store: SQLiteStorage) -> None:
    store.add_messages("sam", [user(f"message {i} " + "x" * 500) for i in range(200)])
    store.close()
    with sqlite3.connect(db_path) as conn:  # fold the WAL into the file, then scribble over its middle
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db_path.read_bytes())
    data[8192:40960] = b"\xff" * (40960 - 8192)
    db_path.write_bytes(bytes(data))
    with pytest.raises(StorageError) as info:
        damaged = SQLiteStorage(db_path)
        damaged.recent_messages("sam", 200)
    assert str(db_path) in str(info.value) and ".recover" in str(info.value)


def test_a_busy_database_is_a_retryable_storage_error(db_path: Path, store: SQLiteStorage) -> None:
    store.close()
    impatient = SQLiteStorage(db_path, timeout=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process in the middle of its step
        with pytest.raises(StorageError, match="another process") as info:
            impatient.add_messages("sam", [user("waits")])
        assert info.value.retryable
        other.execute("ROLLBACK")
        impatient.add_messages("sam", [user("now it goes through")])
        assert impatient.count_messages("sam") == 1
    finally:
        other.close()
        impatient.close()
