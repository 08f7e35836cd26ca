"""What to tell the user when SQLite fails: every ``sqlite3`` error becomes a ``StorageError`` that names
the database file and says what to do."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memgpt.errors import StorageError


def _advice(exc: sqlite3.Error, path: Path) -> tuple[str, bool]:
    """What to tell the user for a low-level SQLite failure, and whether retrying may help."""
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"the file is not a valid memgpt database or is damaged; move it aside (memgpt then starts a new "
            f"one) or restore a backup — `sqlite3 {path} .recover` may salvage its contents",
            False,
        )
    if "locked" in text or "busy" in text:
        return "another process is writing to it; wait for it to finish (or close the other memgpt) and retry", True
    if "readonly" in text or "unable to open" in text or "permission" in text:
        return f"check that {path} and its directory exist and are readable and writable by you", False
    if "disk" in text or "full" in text or "i/o" in text:
        return "check free disk space and that the disk is healthy, then retry", True
    return "if it persists, move the file aside and report the error", False


@contextmanager
def translate_errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        advice, retryable = _advice(exc, path)
        error = StorageError(f"database {path}: {doing} failed ({exc}); {advice}")
        error.retryable = retryable
        raise error from exc
    except OSError as exc:
        raise StorageError(f"database {path}: {doing} failed ({exc}); check the path and its permissions") from exc
