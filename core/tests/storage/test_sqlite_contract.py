"""The default engine passes the storage contract every engine must pass (``memgpt.testing.storage``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memgpt.locking import AgentLock
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.storage import OpenStore, StorageContract


class TestSQLiteContract(StorageContract):
    storage_class = SQLiteStorage
    child_open = "from memgpt.storage.sqlite import SQLiteStorage\nstore = SQLiteStorage({location})\n"

    @pytest.fixture
    def db_path(self, tmp_path: Path) -> Path:
        return tmp_path / "home" / "memgpt.db"

    @pytest.fixture
    def open_store(self, db_path: Path) -> OpenStore:
        return lambda cls=SQLiteStorage: cls(db_path)

    @pytest.fixture
    def child_location(self, db_path: Path) -> str:
        return str(db_path)

    def lock(self, store: Any, agent: str) -> Any:
        # The default engine's session lock is the file lock the runtime takes under the memgpt home.
        return AgentLock(store.path.parent, agent)

    def schema_version(self, store: Any) -> int:
        if store is None:
            return 0
        return int(store.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def set_schema_version(self, store: Any, version: int) -> None:
        with store.transaction():
            store.conn.execute("UPDATE schema_version SET version = ?", (version,))

    def add_column_migration(self, table: str, column: str, *, fail: bool = False) -> Any:
        def migrate(db: Any) -> None:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            if fail:
                raise RuntimeError("migration bug")

        return migrate

    def columns(self, store: Any, table: str) -> set[str]:
        return set(store.db[table].columns_dict)
