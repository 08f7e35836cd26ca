"""The default storage engine: one SQLite file (WAL mode) through sqlite-utils.

- Every write happens in a transaction (``BEGIN IMMEDIATE``; nested blocks are savepoints inside it), so
  a crash or ``kill -9`` leaves the file at the last committed step.
- Recall search is FTS5 over the conversation text only (see ``_recall``); archival search is a cosine
  top-k over an in-memory float32 matrix per agent, loaded once, appended to on insert, dropped when a
  transaction that touched it rolls back, and re-checked when another process has written to the file
  (``PRAGMA data_version``): a search always sees every committed insert.
- Every ``sqlite3`` failure becomes a ``StorageError`` naming the file and what to do.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, tzinfo
from pathlib import Path
from time import monotonic, sleep
from typing import Any, TypeVar

import numpy as np
from sqlite_utils import Database

from memgpt.contract.types import FunctionCall, Message, utcnow
from memgpt.errors import StorageError
from memgpt.storage import _recall, _schema
from memgpt.storage._errors import translate_errors
from memgpt.storage._schema import from_text, to_text
from memgpt.storage._vectors import VectorCache, passage_rows
from memgpt.storage.base import AgentRecord, Passage

_T = TypeVar("_T")
_MESSAGE_COLUMNS = "id, role, content, function_call, name, created_at"
_ID_BATCH = 500  # well under SQLite's limit on bound parameters


def _guarded(method: Callable[..., _T]) -> Callable[..., _T]:
    """Serialise access (one connection, many threads) and turn sqlite3 errors into StorageError."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStorage, *args: Any, **kwargs: Any) -> _T:
        with self._lock, self._translate(method.__name__):
            return method(self, *args, **kwargs)

    return wrapper


class SQLiteStorage:
    """Agents, recall messages and archival passages in one SQLite file (``memgpt.storage.base.Storage``).

    The file is created 0600 (its directory 0700 when we create it). Messages and passages belong to an
    agent that must have been saved first; ``delete_agent`` removes them with it.
    """

    migrations: tuple[_schema.Migration, ...] = _schema.MIGRATIONS

    def __init__(self, path: Path | str, *, timeout: float = 10.0):
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        self._depth = 0
        self._vectors = VectorCache()
        self._conn: sqlite3.Connection | None = None
        with self._lock, self._translate("open"):
            self._create_file()
            self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
            try:
                self.db = Database(self._conn)
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._enable_wal(timeout)
                self._migrate()
            except BaseException:
                self._conn.close()
                self._conn = None
                raise

    # ------------------------------------------------------------------ plumbing

    def _create_file(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            try:
                parent.mkdir(parents=True, mode=0o700)
            except FileExistsError:
                pass  # another process made it in between; the file's open below says if it is no directory
            else:
                os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
        if not self.path.exists():
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process created it in between: fine, it is theirs to have made 0600
        elif not self.path.is_file():
            raise StorageError(f"{self.path} is not a file; point memgpt at a database file path instead")

    def _enable_wal(self, timeout: float) -> None:
        """WAL mode, waiting out other processes as a write would. Switching the journal mode of a file that
        another process is opening can fail at once with "database is locked" (SQLite does not wait on its busy
        timeout there), so that one error is retried until ``timeout``; WAL then stays set in the file."""
        deadline = monotonic() + timeout
        while True:
            try:
                self.db.enable_wal()
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or monotonic() >= deadline:
                    raise
            sleep(0.01)

    def _translate(self, doing: str) -> AbstractContextManager[None]:
        return translate_errors(self.path, doing)

    def _migrate(self) -> None:
        """Bring the file up to this memgpt's schema version, one migration per transaction.

        Several processes may open a brand-new file at the same moment. Each migration runs under
        ``BEGIN IMMEDIATE`` (one writer at a time) and reads the version again inside it, so a migration
        another process has already applied is skipped instead of run twice. An up-to-date file is
        recognised without taking the write lock.
        """
        target = len(self.migrations)
        current = self._checked_version(target)
        while current < target:
            with self.transaction():
                current = self._checked_version(target)  # another process may have migrated while we waited
                if current < target:
                    self.migrations[current](self.db)
                    _schema.write_version(self.db, current + 1)
                    current += 1

    def _checked_version(self, target: int) -> int:
        current = _schema.read_version(self.db)
        if current > target:
            raise StorageError(
                f"database {self.path} has schema version {current}, newer than this memgpt understands ({target}); "
                "upgrade memgpt (pip install -U memgpt) or point MEMGPT_HOME elsewhere"
            )
        return current

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"database {self.path} is closed; open a new SQLiteStorage")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; a nested block joins the outer transaction
        (as a savepoint: its exception undoes its own writes and propagates)."""
        with self._lock:
            conn = self.conn
            outer = self._depth == 0
            savepoint = f"memgpt_{self._depth}"
            with self._translate("begin a transaction"):
                conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._vectors.rolled_back()
                with self._translate("roll back"):
                    if conn.in_transaction:  # a failed statement may already have ended it
                        conn.execute("ROLLBACK" if outer else f"ROLLBACK TO {savepoint}")
                        if not outer:
                            conn.execute(f"RELEASE {savepoint}")
                raise
            self._depth -= 1
            with self._translate("commit"):
                if not outer:
                    conn.execute(f"RELEASE {savepoint}")
                    return
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    self._vectors.rolled_back()
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                self._vectors.committed()

    def _require_agent(self, agent: str) -> None:
        if self.conn.execute("SELECT 1 FROM agents WHERE name = ?", (agent,)).fetchone() is None:
            raise StorageError(f"no agent named {agent!r} in {self.path}; create it (save_agent) before storing its memory")

    @_guarded
    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._vectors.clear()

    # ------------------------------------------------------------------ agents

    @_guarded
    def save_agent(self, record: AgentRecord) -> None:
        row = (
            record.name,
            json.dumps(record.settings, ensure_ascii=False),
            json.dumps(record.core_memory, ensure_ascii=False),
            json.dumps([int(i) for i in record.in_context]),
            to_text(record.created_at),
            to_text(record.updated_at),
        )
        with self.transaction():
            # An upsert, never INSERT OR REPLACE: replacing the row would cascade-delete its memory.
            self.conn.execute(
                """INSERT INTO agents (name, settings, core_memory, in_context, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(name) DO UPDATE SET settings = excluded.settings, core_memory = excluded.core_memory,
                   in_context = excluded.in_context, created_at = excluded.created_at, updated_at = excluded.updated_at""",
                row,
            )

    @staticmethod
    def _agent(row: sqlite3.Row | tuple[Any, ...]) -> AgentRecord:
        name, settings, core_memory, in_context, created_at, updated_at = row
        return AgentRecord(
            name=name,
            settings=json.loads(settings),
            core_memory=json.loads(core_memory),
            in_context=list(json.loads(in_context)),
            created_at=from_text(created_at),
            updated_at=from_text(updated_at),
        )

    _AGENT_COLUMNS = "name, settings, core_memory, in_context, created_at, updated_at"

    @_guarded
    def get_agent(self, name: str) -> AgentRecord | None:
        row = self.conn.execute(f"SELECT {self._AGENT_COLUMNS} FROM agents WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._agent(row)

    @_guarded
    def list_agents(self) -> list[AgentRecord]:
        rows = self.conn.execute(f"SELECT {self._AGENT_COLUMNS} FROM agents ORDER BY name").fetchall()
        return [self._agent(row) for row in rows]

    @_guarded
    def delete_agent(self, name: str) -> bool:
        with self.transaction():
            # Children first and explicitly (the FTS triggers fire on each message row).
            self.conn.execute("DELETE FROM messages WHERE agent = ?", (name,))
            self.conn.execute("DELETE FROM passages WHERE agent = ?", (name,))
            deleted = self.conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0
            self._vectors.drop(name)
        return deleted

    # ------------------------------------------------------------------ recall memory

    @_guarded
    def add_messages(self, agent: str, messages: Sequence[Message]) -> list[Message]:
        stored: list[Message] = []
        with self.transaction():
            self._require_agent(agent)
            for message in messages:
                if message.id is not None:
                    raise StorageError(f"message {message.id} is already stored; add_messages takes new messages only")
                call = message.function_call
                created = to_text(message.created_at)
                cursor = self.conn.execute(
                    "INSERT INTO messages (agent, role, content, function_call, name, created_at, search_text) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        agent,
                        message.role,
                        message.content,
                        None
                        if call is None
                        else json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False),
                        message.name,
                        created,
                        _recall.searchable_text(message),
                    ),
                )
                stored.append(message.model_copy(update={"id": cursor.lastrowid, "created_at": from_text(created)}))
        return stored

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        id_, role, content, function_call, name, created_at = row
        call = None
        if function_call is not None:
            data = json.loads(function_call)
            call = FunctionCall(name=data["name"], arguments=data.get("arguments") or {})
        return Message(role=role, content=content, function_call=call, name=name, created_at=from_text(created_at), id=id_)

    def _select_messages(self, where: str, params: Sequence[Any]) -> list[Message]:
        rows = self.conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where}", params).fetchall()
        return [self._message(row) for row in rows]

    @_guarded
    def get_messages(self, agent: str, ids: Sequence[int]) -> list[Message]:
        found: dict[int, Message] = {}
        wanted = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(wanted), _ID_BATCH):
            batch = wanted[start : start + _ID_BATCH]
            marks = ",".join("?" * len(batch))
            for message in self._select_messages(f"agent = ? AND id IN ({marks})", [agent, *batch]):
                found[message.id] = message  # type: ignore[index]
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StorageError(
                f"agent {agent!r} has no messages with ids {missing[:10]} in {self.path}; its context list is out of date"
            )
        return [found[int(i)] for i in ids]

    @_guarded
    def count_messages(self, agent: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM messages WHERE agent = ?", (agent,)).fetchone()[0])

    @_guarded
    def recent_messages(self, agent: str, limit: int) -> list[Message]:
        if limit <= 0:
            return []
        newest = self._select_messages("agent = ? ORDER BY id DESC LIMIT ?", [agent, limit])
        return newest[::-1]

    @_guarded
    def search_messages(self, agent: str, query: str, *, limit: int = 5, offset: int = 0) -> tuple[list[Message], int]:
        _check_page(limit, offset)
        terms = _recall.query_terms(query)
        # All words first; if nothing has them all, any of them (ranked), then any as a prefix; last a
        # plain substring match, which also serves queries that are only punctuation.
        attempts = [_recall.all_terms(terms), _recall.any_term(terms), _recall.any_prefix(terms)] if terms else []
        for match in dict.fromkeys(attempts):
            # CROSS JOIN keeps the FTS index as the outer loop; otherwise SQLite walks the agent's
            # messages and evaluates MATCH once per row (100x slower on a long history).
            join = (
                "FROM messages_fts CROSS JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? AND m.agent = ?"
            )
            total = int(self.conn.execute(f"SELECT count(*) {join}", (match, agent)).fetchone()[0])
            if total:
                cols = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
                rows = self.conn.execute(
                    f"SELECT {cols} {join} ORDER BY messages_fts.rank, m.id LIMIT ? OFFSET ?", (match, agent, limit, offset)
                ).fetchall()
                return [self._message(row) for row in rows], total
        if not query.strip():
            return [], 0
        where = "agent = ? AND search_text LIKE ? ESCAPE '\\'"
        params = [agent, _recall.like_pattern(query)]
        total = int(self.conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0])
        return self._select_messages(f"{where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]), total

    @_guarded
    def messages_between(
        self, agent: str, start: date, end: date, *, limit: int = 5, offset: int = 0, tz: tzinfo = UTC
    ) -> tuple[list[Message], int]:
        _check_page(limit, offset)
        low, high = (to_text(bound) for bound in _recall.day_range(start, end, tz))
        where = "agent = ? AND created_at >= ? AND created_at < ? AND search_text IS NOT NULL"
        params = [agent, low, high]
        total = int(self.conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0])
        return self._select_messages(f"{where} ORDER BY created_at, id LIMIT ? OFFSET ?", [*params, limit, offset]), total

    # ------------------------------------------------------------------ archival memory

    @_guarded
    def add_passages(
        self, agent: str, texts: Sequence[str], embeddings: Any, metadata: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        texts = list(texts)
        rows = passage_rows(texts, embeddings, metadata)
        if not texts:
            return []
        now = to_text(utcnow())
        ids: list[int] = []
        with self.transaction():
            self._require_agent(agent)
            index = self._vectors.cached(self.conn, agent)
            dims = index.dimensions if index is not None else self._stored_dimensions(agent)
            if dims is not None and dims != rows.shape[1]:
                raise StorageError(
                    f"agent {agent!r} holds {dims}-dimensional embeddings but these have {rows.shape[1]}: the embedding "
                    "model changed; use the model the agent was created with, or a new agent"
                )
            for i, text in enumerate(texts):
                meta = json.dumps(metadata[i] if metadata is not None else {}, ensure_ascii=False)
                cursor = self.conn.execute(
                    "INSERT INTO passages (agent, text, embedding, created_at, metadata) VALUES (?, ?, ?, ?, ?)",
                    (agent, text, rows[i].astype("<f4").tobytes(), now, meta),
                )
                ids.append(int(cursor.lastrowid or 0))
            self._vectors.appended(agent, index, ids, rows)
        return ids

    def _stored_dimensions(self, agent: str) -> int | None:
        row = self.conn.execute("SELECT length(embedding) FROM passages WHERE agent = ? LIMIT 1", (agent,)).fetchone()
        return None if row is None else int(row[0]) // 4

    @_guarded
    def search_passages(self, agent: str, embedding: Any, *, limit: int = 5, offset: int = 0) -> tuple[list[Passage], int]:
        _check_page(limit, offset)
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        index = self._vectors.get(self.conn, agent)
        if index is None:
            return [], 0
        if query.shape[0] != index.dimensions:
            raise StorageError(
                f"the query embedding has {query.shape[0]} dimensions but agent {agent!r}'s passages have "
                f"{index.dimensions}: the embedding model changed; use the one the agent was created with"
            )
        norm = float(np.linalg.norm(query))
        ids, scores = index.top(query / norm if norm else query, offset + limit)
        ids, scores = ids[offset:], scores[offset:]
        marks = ",".join("?" * len(ids))
        by_id = {p.id: p for p in self._select_passages(f"id IN ({marks})", [int(i) for i in ids])} if len(ids) else {}
        page = [_with_score(by_id[int(i)], float(s)) for i, s in zip(ids, scores, strict=True) if int(i) in by_id]
        return page, len(index)

    def _select_passages(self, where: str, params: Sequence[Any]) -> list[Passage]:
        rows = self.conn.execute(f"SELECT id, agent, text, created_at, metadata FROM passages WHERE {where}", params).fetchall()
        return [Passage(id=r[0], agent=r[1], text=r[2], created_at=from_text(r[3]), metadata=json.loads(r[4])) for r in rows]

    @_guarded
    def count_passages(self, agent: str) -> int:
        return int(self.conn.execute("SELECT count(*) FROM passages WHERE agent = ?", (agent,)).fetchone()[0])

    def iter_passages(self, agent: str) -> Iterator[Passage]:
        """Every passage of ``agent``, oldest first, read in batches (no cursor is held between them)."""
        last = 0
        while True:
            with self._lock, self._translate("iter_passages"):
                batch = self._select_passages("agent = ? AND id > ? ORDER BY id LIMIT 1000", (agent, last))
            if not batch:
                return
            yield from batch
            last = batch[-1].id

    def passage_batches(self, agent: str, *, size: int = 1000) -> Iterator[tuple[list[Passage], np.ndarray]]:
        """``Storage.passage_batches``: one query per batch (no cursor is held between them)."""
        if size < 1:
            raise StorageError(f"a batch needs size >= 1, got {size}")
        last = 0
        while True:
            with self._lock, self._translate("passage_batches"):
                rows = self.conn.execute(
                    "SELECT id, agent, text, created_at, metadata, embedding FROM passages "
                    "WHERE agent = ? AND id > ? ORDER BY id LIMIT ?",
                    (agent, last, size),
                ).fetchall()
            if not rows:
                return
            if len({len(r[5]) for r in rows}) != 1:
                raise StorageError(f"agent {agent!r} has embeddings of different sizes; its archival memory needs re-embedding")
            passages = [
                Passage(id=r[0], agent=r[1], text=r[2], created_at=from_text(r[3]), metadata=json.loads(r[4])) for r in rows
            ]
            matrix = np.frombuffer(b"".join(r[5] for r in rows), dtype="<f4").reshape(len(rows), -1).astype(np.float32)
            yield passages, matrix
            last = passages[-1].id


def _with_score(passage: Passage, score: float) -> Passage:
    passage.score = score
    return passage


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise StorageError(f"a page needs limit >= 0 and offset >= 0, got limit={limit}, offset={offset}")
