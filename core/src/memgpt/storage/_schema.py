"""The SQLite schema, its version table and the migrations that bring an older file up to date.

``MIGRATIONS[i]`` turns a version-``i`` database into version ``i + 1`` (version 0 = empty file). Each runs
inside one transaction together with the version bump, so an interrupted migration leaves the file at
the previous version; the version is read again under that transaction's write lock, so when several
processes open a new file at once, each migration runs once. To change the schema, append a function; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlite_utils import Database

Migration = Callable[[Database], None]


def to_text(value: datetime) -> str:
    """Fixed-width UTC ISO text, so that string order is time order (a naive datetime is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def create_v1(db: Database) -> None:
    """Agents, recall messages (+ full-text index) and archival passages."""
    db.table("agents").create(
        {
            "name": str,
            "settings": str,
            "core_memory": str,
            "in_context": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="name",
        not_null={"settings", "core_memory", "in_context", "created_at", "updated_at"},
    )
    # AUTOINCREMENT: an id is never reused, so a stale list of ids can never point at a newer message.
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT,
            function_call TEXT,
            name TEXT,
            created_at TEXT NOT NULL,
            search_text TEXT
        )
        """
    )
    db.table("messages").create_index(["agent", "id"], index_name="messages_agent_id")
    db.table("messages").create_index(["agent", "created_at"], index_name="messages_agent_created")
    # External-content FTS5 over the extracted conversation text, kept in sync by triggers.
    db.table("messages").enable_fts(["search_text"], fts_version="FTS5", create_triggers=True, tokenize="porter unicode61")
    db.execute(
        """
        CREATE TABLE passages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            agent TEXT NOT NULL REFERENCES agents(name) ON DELETE CASCADE,
            text TEXT NOT NULL,
            embedding BLOB NOT NULL,
            created_at TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.table("passages").create_index(["agent", "id"], index_name="passages_agent_id")


MIGRATIONS: tuple[Migration, ...] = (create_v1,)


def read_version(db: Database) -> int:
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def write_version(db: Database, version: int) -> None:
    if not db["schema_version"].exists():
        db.table("schema_version").create({"version": int}, not_null={"version"})
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
