"""Agents round-trip exactly; the file, schema and errors behave as documented."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from memgpt.errors import StorageError
from memgpt.storage.sqlite import SQLiteStorage

from .conftest import user


def test_file_is_private_and_in_wal_mode(store: SQLiteStorage, db_path: Path) -> None:
    store.add_messages("sam", [user("hello")])  # something in the WAL
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(db_path.parent).st_mode) == 0o700
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists() and stat.S_IMODE(os.stat(wal).st_mode) == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


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
