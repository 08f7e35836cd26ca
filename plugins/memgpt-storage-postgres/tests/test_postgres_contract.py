"""PostgreSQL passes the storage contract every engine must pass (``memgpt.testing.storage``), on a real
server with pgvector."""

from __future__ import annotations

from typing import Any

import pytest

from memgpt.testing.storage import OpenStore, StorageContract
from memgpt_storage_postgres.storage import PostgresStorage


class TestPostgresContract(StorageContract):
    storage_class = PostgresStorage
    child_open = "from memgpt_storage_postgres.storage import PostgresStorage\nstore = PostgresStorage({location})\n"

    @pytest.fixture
    def open_store(self, postgres_uri: str) -> OpenStore:
        return lambda cls=PostgresStorage: cls(postgres_uri)

    @pytest.fixture
    def child_location(self, postgres_uri: str) -> str:
        return postgres_uri

    def schema_version(self, store: Any) -> int:
        if store is None:
            return 0
        with store.pool.connection() as conn:
            return int(conn.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def set_schema_version(self, store: Any, version: int) -> None:
        with store.pool.connection() as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))

    def add_column_migration(self, table: str, column: str, *, fail: bool = False) -> Any:
        def migrate(conn: Any) -> None:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} text")
            if fail:
                raise RuntimeError("migration bug")

        return migrate

    def columns(self, store: Any, table: str) -> set[str]:
        with store.pool.connection() as conn:
            rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
            return {row[0] for row in rows.fetchall()}
