"""``memgpt list agents`` straight from the default SQLite file, with the stdlib ``sqlite3`` alone.

Listing agents needs one table and two counts, not the config's pydantic models, the plugin registry or the
storage engine (sqlite-utils, numpy). ``rows()`` reads them when the answer cannot differ from the full
path's: there is no config file (so the storage is core's ``sqlite``, whatever plugins are installed: a
built-in name cannot be taken over), or the config names ``sqlite`` and no URI (``read``: the config's
models are imported to validate it, the rest is not), and the database file already exists at this memgpt's schema version in
WAL mode (so opening it would neither create, migrate nor convert anything). Otherwise, and on any SQLite
error, it returns ``None`` and the caller takes the full path, which says what is wrong the usual way.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: ``len(memgpt.storage._schema.MIGRATIONS)``: the version an up-to-date file has (a test holds them equal).
SCHEMA_VERSION = 1


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)  # as memgpt.storage._schema.from_text


def agent_row(
    name: str, settings: dict[str, Any], created: datetime, updated: datetime, messages: int, passages: int
) -> dict[str, Any]:
    """One agent as ``memgpt list agents`` shows it (the full path builds its rows with this too)."""
    model = settings.get("model", {})
    return {
        # most telling first: a narrow terminal shows the leading columns
        "name": name,
        "backend": model.get("backend"),
        "messages": messages,
        "last_used": f"{updated.astimezone():%Y-%m-%d %H:%M}",
        "wrapper": model.get("wrapper"),
        "passages": passages,
        "persona": settings.get("persona"),
        "human": settings.get("human"),
        "preset": settings.get("preset"),
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
    }


def rows(home: Path) -> list[dict[str, Any]] | None:
    """The agents in ``home``'s SQLite file when there is no config file, most recently used first; ``None`` when
    the full path must answer."""
    if (home / "config.toml").exists() or (home / "config.toml").is_symlink():
        return None
    return read(home)


def read(home: Path) -> list[dict[str, Any]] | None:
    """The agents in ``home``'s SQLite file (the storage the config names is core's ``sqlite``), most recently
    used first; ``None`` when the full path must answer."""
    path = home / "memgpt.db"
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error:
        return None
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            return None
        if conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] != SCHEMA_VERSION:
            return None
        agents = conn.execute("SELECT name, settings, created_at, updated_at FROM agents ORDER BY name").fetchall()
        found = [
            (
                name,
                json.loads(settings),
                _from_text(created),
                _from_text(updated),
                conn.execute("SELECT count(*) FROM messages WHERE agent = ?", (name,)).fetchone()[0],
                conn.execute("SELECT count(*) FROM passages WHERE agent = ?", (name,)).fetchone()[0],
            )
            for name, settings, created, updated in agents
        ]
    except (sqlite3.Error, ValueError, TypeError):  # the full path reports a damaged file its own way
        return None
    finally:
        conn.close()
    return [agent_row(*agent) for agent in sorted(found, key=lambda agent: agent[3], reverse=True)]
