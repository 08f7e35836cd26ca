"""``PostgresStorage``: the ``memgpt.storage.base.Storage`` protocol on PostgreSQL with pgvector.

- Connections come from a ``psycopg_pool.ConnectionPool``. A ``transaction()`` takes one connection for
  its thread until the outermost block ends (nested blocks are savepoints on it), so every write of one
  agent step commits together or not at all, exactly as with SQLite; other threads and processes see the
  step whole or not at all. Every public write runs in such a block, so a failed one undoes only itself.
- Recall search is PostgreSQL full-text search (``tsvector`` + GIN) over the conversation text only
  (``memgpt.storage._recall.searchable_text``), with SQLite's fallbacks: all words, then any word
  (ranked), then any word as a prefix, then a substring.
- Archival search is pgvector cosine distance. Archives up to ``exact_below`` passages (the count kept on
  the agent's row, never counted at search time) are scanned exactly (ties to the older passage, as
  SQLite); larger ones use an HNSW index per embedding size, searched with
  pgvector's iterative scan so the agent filter never starves a page. The index is built in bulk the first
  time an archive of that size needs it (``build_index``), not row by row from the first insert: building
  it once is far cheaper than maintaining it through a bulk load.
- ``lock_agent(name)`` is a session-level advisory lock on a connection of its own: it spans processes and
  machines, and the server drops it when that connection dies (``kill -9``, a lost host).
- Every psycopg failure becomes a ``StorageError`` naming the database (never its password).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from time import monotonic
from typing import Any, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from memgpt.contract.types import FunctionCall, Message, utcnow
from memgpt.errors import AgentBusyError, StorageError
from memgpt.storage import _recall
from memgpt.storage._vectors import passage_rows
from memgpt.storage.base import AgentRecord, Passage
from memgpt_storage_postgres import schema

_T = TypeVar("_T")
_MESSAGE_COLUMNS = "id, role, content, function_call, name, created_at"
_AGENT_COLUMNS = "name, settings, core_memory, in_context, created_at, updated_at"
_PASSAGE_COLUMNS = "id, agent, text, created_at, metadata"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits: safe inside to_tsquery
_HNSW_MAX_EF = 1000  # pgvector's limit on hnsw.ef_search


def describe(uri: str) -> str:
    """The database and server of a connection string, without its password: for messages."""
    try:
        info = conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        return "the PostgreSQL database (its URI does not parse)"
    host = str(info.get("host") or "localhost")
    where = host if host.startswith("/") or "port" not in info else f"{host}:{info['port']}"
    return f"PostgreSQL database {info.get('dbname') or info.get('user') or '(default)'!s} on {where}"


def _advice(exc: Exception) -> tuple[str, bool]:
    """What to tell the user for a low-level failure, and whether retrying may help."""
    if isinstance(exc, PoolTimeout):
        return "every connection of the pool is busy or the server stopped answering; retry, or raise the pool size", True
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return (
            "the database user lacks a privilege memgpt needs; create the database with an owner memgpt connects "
            "as, and the pgvector extension (CREATE EXTENSION vector) as a superuser",
            False,
        )
    if isinstance(exc, (pg_errors.UndefinedFile, pg_errors.FeatureNotSupported)) or "extension" in str(exc).lower():
        return "install pgvector on the PostgreSQL server (https://github.com/pgvector/pgvector) and retry", False
    if isinstance(exc, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.LockNotAvailable)):
        return "another process was writing the same rows; retry", True
    if isinstance(exc, pg_errors.InvalidPassword) or "password" in str(exc).lower():
        return "check the user and password (`memgpt configure --storage-uri postgresql://user:password@host/db`)", False
    if isinstance(exc, psycopg.OperationalError):
        return "check that the server is running and reachable, and that `memgpt configure --storage-uri` names it", True
    if isinstance(exc, pg_errors.CharacterNotInRepertoire) or "nul" in str(exc).lower():
        return "PostgreSQL text cannot hold NUL characters; remove them from the text", False
    return "if it persists, report the error", False


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise StorageError(f"a page needs limit >= 0 and offset >= 0, got limit={limit}, offset={offset}")


def _clean(text: str) -> str:
    """A query as PostgreSQL can take it (text never holds NUL)."""
    return text.replace("\x00", "")


def _guarded(method: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(method)
    def wrapper(self: PostgresStorage, *args: Any, **kwargs: Any) -> _T:
        with self._translate(method.__name__):
            return method(self, *args, **kwargs)

    return wrapper


class AdvisoryLock:
    """One agent's session lock: ``pg_try_advisory_lock`` on a connection held from ``acquire`` to ``release``.

    The lock belongs to that connection's server session, so it is released when the connection closes for
    any reason, a killed process included, on whichever machine it ran."""

    def __init__(self, uri: str, agent: str, where: str) -> None:
        self.agent = agent
        self._uri = uri
        self._where = where
        digest = hashlib.sha256(f"memgpt-agent:{agent}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> AdvisoryLock:
        try:
            conn = psycopg.connect(self._uri, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            advice, _ = _advice(exc)
            raise StorageError(f"{self._where}: taking the session lock failed ({_one_line(exc)}); {advice}") from None
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise StorageError(f"{self._where}: taking the session lock failed ({_one_line(exc)})") from None
        if not row or not row[0]:
            conn.close()
            raise AgentBusyError(
                f"agent {self.agent!r} is open in another memgpt session (on this or another machine sharing "
                f"{self._where}); finish that one first (/exit), or pick another agent with --agent"
            )
        self._conn = conn
        return self

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # the connection is gone, and the lock with it
        finally:
            conn.close()

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def __enter__(self) -> AdvisoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class PostgresStorage:
    """Agents, recall messages and archival passages in one PostgreSQL database (``memgpt.storage.base.Storage``).

    ``uri``: a libpq connection string or URI. The database must exist; the first open creates the tables
    (and the ``vector`` extension, which needs the right to create it). ``pool_size``: most connections
    this handle holds. ``exact_below``: archives with fewer passages are searched exactly; larger ones
    through the HNSW index. ``ef_search``: HNSW candidate list size (at least the page asked for).
    ``index_memory``: ``maintenance_work_mem`` while the index is built (None: the server's setting).
    """

    migrations: tuple[schema.Migration, ...] = schema.MIGRATIONS

    def __init__(
        self,
        uri: str,
        *,
        pool_size: int = 4,
        timeout: float = 10.0,
        exact_below: int = 20_000,
        ef_search: int = 100,
        index_memory: str | None = "1GB",
    ) -> None:
        self._uri = uri
        self.where = describe(uri)
        self.exact_below = exact_below
        self.ef_search = ef_search
        self.index_memory = index_memory
        self._local = threading.local()
        self._indexed: set[int] = set()
        self._index_retry_at: dict[int, float] = {}
        self._iterative = False
        self._pool: ConnectionPool[Any] | None = None
        with self._translate("open"):
            try:
                first = psycopg.connect(uri, autocommit=True, connect_timeout=max(1, int(timeout)))
            except psycopg.ProgrammingError as exc:
                raise StorageError(
                    f"the storage URI is not a valid PostgreSQL connection string ({_one_line(exc)}); give one like "
                    "postgresql://user:password@host:5432/memgpt"
                ) from None
            try:
                self._migrate(first)
                version = first.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                self._iterative = version is not None and _version_tuple(version[0]) >= (0, 8)
            finally:
                first.close()
            self._pool = ConnectionPool(
                uri,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
                configure=_configure,
                timeout=timeout,
                open=False,
                name="memgpt-storage",
            )
            self._pool.open(wait=True, timeout=timeout)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except (psycopg.Error, PoolTimeout) as exc:
            if isinstance(exc, pg_errors.ForeignKeyViolation) and "agents" in str(exc):
                raise StorageError(
                    f"the agent was deleted from {self.where} while its memory was being written; save it again"
                ) from None
            advice, retryable = _advice(exc)
            error = StorageError(f"{self.where}: {doing} failed ({_one_line(exc)}); {advice}")
            error.retryable = retryable
            raise error from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Bring the database up to this plugin's schema version, one migration per transaction, under an
        advisory lock so that processes opening a new database at once each run a migration once."""
        target = len(self.migrations)
        current = self._checked_version(conn, target)
        if current == target:
            return
        # A session lock taken before the transactions begin: each then starts after the previous holder's
        # commit, so it sees that holder's tables (a transaction that waited for a lock inside it could still
        # hold its cached "no such table").
        conn.execute("SELECT pg_advisory_lock(%s, %s)", schema.MIGRATION_LOCK)
        try:
            while True:
                with conn.transaction():
                    current = self._checked_version(conn, target)
                    if current >= target:
                        return
                    self.migrations[current](conn)
                    schema.write_version(conn, current + 1)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", schema.MIGRATION_LOCK)

    def _checked_version(self, conn: psycopg.Connection[Any], target: int) -> int:
        current = schema.read_version(conn)
        if current > target:
            raise StorageError(
                f"{self.where} has schema version {current}, newer than this memgpt-storage-postgres understands "
                f"({target}); upgrade memgpt (pip install -U memgpt-storage-postgres) or use another database"
            )
        return current

    @property
    def pool(self) -> ConnectionPool[Any]:
        if self._pool is None:
            raise StorageError(f"{self.where}: this storage handle is closed; open a new PostgresStorage")
        return self._pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's transaction connection when inside ``transaction()``, else one from the pool."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.pool.connection() as pooled:
            yield pooled

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; a nested block joins the outer transaction (as a
        savepoint: its exception undoes its own writes and propagates)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with self._translate("a nested transaction"), conn.transaction():
                yield
            return
        with self._translate("a transaction"), self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield
            finally:
                self._local.conn = None

    def _require_agent(self, conn: psycopg.Connection[Any], agent: str) -> None:
        if conn.execute("SELECT 1 FROM agents WHERE name = %s", (agent,)).fetchone() is None:
            raise StorageError(f"no agent named {agent!r} in {self.where}; create it (save_agent) before storing its memory")

    def lock_agent(self, agent: str) -> AdvisoryLock:
        """The session lock of ``agent`` (unacquired): see ``AdvisoryLock``."""
        self.pool  # noqa: B018 (a closed handle says so)
        return AdvisoryLock(self._uri, agent, self.where)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ------------------------------------------------------------------ agents

    @_guarded
    def save_agent(self, record: AgentRecord) -> None:
        row = (
            record.name,
            json.dumps(record.settings, ensure_ascii=False),
            json.dumps(record.core_memory, ensure_ascii=False),
            json.dumps([int(i) for i in record.in_context]),
            _aware(record.created_at),
            _aware(record.updated_at),
        )
        with self.transaction(), self._connection() as conn:
            conn.execute(
                f"""INSERT INTO agents ({_AGENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)
                    ON CONFLICT (name) DO UPDATE SET settings = excluded.settings, core_memory = excluded.core_memory,
                    in_context = excluded.in_context, created_at = excluded.created_at, updated_at = excluded.updated_at""",
                row,
            )

    @staticmethod
    def _agent(row: Sequence[Any]) -> AgentRecord:
        name, settings, core_memory, in_context, created_at, updated_at = row
        return AgentRecord(
            name=name,
            settings=json.loads(settings),
            core_memory=json.loads(core_memory),
            in_context=list(json.loads(in_context)),
            created_at=_utc(created_at),
            updated_at=_utc(updated_at),
        )

    @_guarded
    def get_agent(self, name: str) -> AgentRecord | None:
        with self._connection() as conn:
            row = conn.execute(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE name = %s", (name,)).fetchone()
        return None if row is None else self._agent(row)

    @_guarded
    def list_agents(self) -> list[AgentRecord]:
        with self._connection() as conn:
            rows = conn.execute(f'SELECT {_AGENT_COLUMNS} FROM agents ORDER BY name COLLATE "C"').fetchall()
        return [self._agent(row) for row in rows]

    @_guarded
    def delete_agent(self, name: str) -> bool:
        with self.transaction(), self._connection() as conn:
            cursor = conn.execute("DELETE FROM agents WHERE name = %s", (name,))  # messages and passages cascade
            return cursor.rowcount > 0

    # ------------------------------------------------------------------ recall memory

    @_guarded
    def add_messages(self, agent: str, messages: Sequence[Message]) -> list[Message]:
        for message in messages:
            if message.id is not None:
                raise StorageError(f"message {message.id} is already stored; add_messages takes new messages only")
        if not messages:
            return []
        rows = []
        for message in messages:
            call = message.function_call
            text = _recall.searchable_text(message)
            rows.append(
                (
                    agent,
                    message.role,
                    message.content,
                    None if call is None else json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False),
                    message.name,
                    _aware(message.created_at),
                    text,
                    text,
                )
            )
        with self.transaction(), self._connection() as conn:
            self._require_agent(conn, agent)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO messages (agent, role, content, function_call, name, created_at, search_text, search_vector) "
                    f"VALUES (%s, %s, %s, %s, %s, %s, %s, to_tsvector('{schema.TEXT_SEARCH}', coalesce(%s, ''))) "
                    "RETURNING id, created_at",
                    rows,
                    returning=True,
                )
                returned: list[Any] = []
                while True:
                    returned.append(cursor.fetchone())
                    if not cursor.nextset():
                        break
        return [
            message.model_copy(update={"id": int(row[0]), "created_at": _utc(row[1])})
            for message, row in zip(messages, returned, strict=True)
        ]

    @staticmethod
    def _message(row: Sequence[Any]) -> Message:
        id_, role, content, function_call, name, created_at = row
        call = None
        if function_call is not None:
            data = json.loads(function_call)
            call = FunctionCall(name=data["name"], arguments=data.get("arguments") or {})
        return Message(role=role, content=content, function_call=call, name=name, created_at=_utc(created_at), id=int(id_))

    def _select_messages(self, conn: psycopg.Connection[Any], where: str, params: Sequence[Any]) -> list[Message]:
        rows = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where}", params).fetchall()
        return [self._message(row) for row in rows]

    @_guarded
    def get_messages(self, agent: str, ids: Sequence[int]) -> list[Message]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        with self._connection() as conn:
            found = {m.id: m for m in self._select_messages(conn, "agent = %s AND id = ANY(%s)", (agent, wanted))}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StorageError(
                f"agent {agent!r} has no messages with ids {missing[:10]} in {self.where}; its context list is out of date"
            )
        return [found[int(i)] for i in ids]

    @_guarded
    def count_messages(self, agent: str) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM messages WHERE agent = %s", (agent,)).fetchone()[0])  # type: ignore[index]

    @_guarded
    def recent_messages(self, agent: str, limit: int) -> list[Message]:
        if limit <= 0:
            return []
        with self._connection() as conn:
            newest = self._select_messages(conn, "agent = %s ORDER BY id DESC LIMIT %s", (agent, limit))
        return newest[::-1]

    @_guarded
    def search_messages(self, agent: str, query: str, *, limit: int = 5, offset: int = 0) -> tuple[list[Message], int]:
        _check_page(limit, offset)
        query = _clean(query)
        words = _WORD.findall(query)
        config = schema.TEXT_SEARCH
        # All words first; if nothing has them all, any of them (ranked), then any as a prefix; last a plain
        # substring match, which also serves queries that are only punctuation. Each tsquery is built from
        # letters and digits only, so no user text is tsquery syntax.
        attempts: list[tuple[str, list[Any]]] = []
        if words:
            attempts.append((f"plainto_tsquery('{config}', %s)", [" ".join(words)]))
            if len(words) > 1:
                attempts.append((" || ".join([f"plainto_tsquery('{config}', %s)"] * len(words)), list(words)))
            attempts.append((" || ".join([f"to_tsquery('{config}', %s)"] * len(words)), [f"{w}:*" for w in words]))
        cols = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
        with self._connection() as conn:
            for tsquery, params in attempts:
                source = (
                    f"FROM messages m, ({'SELECT ' + tsquery} AS q) AS query WHERE m.agent = %s AND m.search_vector @@ query.q"
                )
                total = int(conn.execute(f"SELECT count(*) {source}", [*params, agent]).fetchone()[0])  # type: ignore[index]
                if total:
                    rows = conn.execute(
                        f"SELECT {cols} {source} ORDER BY ts_rank(m.search_vector, query.q) DESC, m.id LIMIT %s OFFSET %s",
                        [*params, agent, limit, offset],
                    ).fetchall()
                    return [self._message(row) for row in rows], total
            if not query.strip():
                return [], 0
            where = "agent = %s AND search_text ILIKE %s"
            params = [agent, _recall.like_pattern(query)]
            total = int(conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0])  # type: ignore[index]
            return self._select_messages(conn, f"{where} ORDER BY id LIMIT %s OFFSET %s", [*params, limit, offset]), total

    @_guarded
    def messages_between(
        self, agent: str, start: date, end: date, *, limit: int = 5, offset: int = 0, tz: tzinfo = UTC
    ) -> tuple[list[Message], int]:
        _check_page(limit, offset)
        low, high = _recall.day_range(start, end, tz)
        where = "agent = %s AND created_at >= %s AND created_at < %s AND search_text IS NOT NULL"
        params: list[Any] = [agent, low, high]
        with self._connection() as conn:
            total = int(conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params).fetchone()[0])  # type: ignore[index]
            page = self._select_messages(conn, f"{where} ORDER BY created_at, id LIMIT %s OFFSET %s", [*params, limit, offset])
        return page, total

    # ------------------------------------------------------------------ archival memory

    @_guarded
    def add_passages(
        self,
        agent: str,
        texts: Sequence[str],
        embeddings: Any,
        metadata: Sequence[dict[str, Any]] | None = None,
        *,
        created_at: Sequence[datetime] | None = None,
    ) -> list[int]:
        """``Storage.add_passages``; ``created_at`` (one per text) keeps the times of passages copied from
        another store (``memgpt migrate``), else they are now."""
        texts = list(texts)
        rows = passage_rows(texts, embeddings, metadata)
        if created_at is not None and len(created_at) != len(texts):
            raise StorageError(f"got {len(texts)} passages but {len(created_at)} creation times; pass one per text or none")
        if not texts:
            return []
        dims = int(rows.shape[1])
        now = utcnow()
        values = [
            (
                agent,
                text,
                rows[i],
                dims,
                _aware(created_at[i]) if created_at is not None else now,
                json.dumps(metadata[i] if metadata is not None else {}, ensure_ascii=False),
            )
            for i, text in enumerate(texts)
        ]
        with self.transaction(), self._connection() as conn:
            # the agent's passage count rises with the insert, in its transaction (schema.passage_counts_v2)
            counted = conn.execute("UPDATE agents SET passage_count = passage_count + %s WHERE name = %s", (len(texts), agent))
            if counted.rowcount == 0:
                self._require_agent(conn, agent)  # says there is no such agent
            held = conn.execute("SELECT dims FROM passages WHERE agent = %s LIMIT 1", (agent,)).fetchone()
            if held is not None and int(held[0]) != dims:
                raise StorageError(
                    f"agent {agent!r} holds {held[0]}-dimensional embeddings but these have {dims}: the embedding "
                    "model changed; use the model the agent was created with, or a new agent"
                )
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO passages (agent, text, embedding, dims, created_at, metadata) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    values,
                    returning=True,
                )
                ids = []
                while True:
                    ids.append(int(cursor.fetchone()[0]))  # type: ignore[index]
                    if not cursor.nextset():
                        break
        return ids

    def build_index(self, dims: int, *, lock_timeout: float | None = None) -> bool:
        """Make sure the HNSW index over ``dims``-sized embeddings exists (built once, in bulk, on a connection of
        its own; writes to the passages table wait while it is built); whether it exists now. With
        ``lock_timeout`` (seconds), give up when the table's lock cannot be had that fast (this thread's own open
        step may hold it): searches then scan exactly, and the build is tried again a minute later."""
        dims = int(dims)
        if dims in self._indexed:
            return True
        if monotonic() < self._index_retry_at.get(dims, 0.0):
            return False
        with self._translate("building the archival index"), self.pool.connection() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (schema.hnsw_index_name(dims),)).fetchone()
            if exists is not None and exists[0] is not None:
                self._indexed.add(dims)
                return True
            try:
                with conn.transaction():
                    if lock_timeout is not None:
                        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout * 1000)}ms",))
                    if self.index_memory:  # a graph that outgrows it is built on disk, many times slower
                        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (self.index_memory,))
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (schema.MIGRATION_LOCK[0], 1000 + dims))
                    conn.execute(schema.hnsw_index_sql(dims))  # type: ignore[arg-type]
                conn.execute("ANALYZE passages")
            except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
                self._index_retry_at[dims] = monotonic() + 60
                return False
        self._indexed.add(dims)
        return True

    @_guarded
    def search_passages(self, agent: str, embedding: Any, *, limit: int = 5, offset: int = 0) -> tuple[list[Passage], int]:
        _check_page(limit, offset)
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        with self._connection() as conn:
            # the count kept with the agent (schema.passage_counts_v2), not a count of its passages; the size of
            # one embedding is every one's (add_passages refuses another)
            counted = conn.execute("SELECT passage_count FROM agents WHERE name = %s", (agent,)).fetchone()
            held = conn.execute("SELECT dims FROM passages WHERE agent = %s LIMIT 1", (agent,)).fetchone()
            if counted is None or held is None or int(counted[0]) == 0:
                return [], 0
            total, dims = int(counted[0]), int(held[0])
            if query.shape[0] != dims:
                raise StorageError(
                    f"the query embedding has {query.shape[0]} dimensions but agent {agent!r}'s passages have "
                    f"{dims}: the embedding model changed; use the one the agent was created with"
                )
            norm = float(np.linalg.norm(query))
            unit = query / norm if norm else query
            wanted = min(limit, max(0, total - offset))
            if wanted == 0:
                return [], total
            rows: list[Any] | None = None
            if total >= self.exact_below and offset + limit <= _HNSW_MAX_EF and self.build_index(dims, lock_timeout=2.0):
                rows = self._search_hnsw(conn, agent, unit, dims, limit, offset)
                if len(rows) < wanted:
                    rows = None  # the index gave too few (no iterative scan on this server): scan exactly
            if rows is None:
                rows = conn.execute(
                    f"SELECT {_PASSAGE_COLUMNS}, embedding <=> %s AS distance FROM passages WHERE agent = %s "
                    "ORDER BY distance, id LIMIT %s OFFSET %s",
                    (unit, agent, limit, offset),
                ).fetchall()
        return [self._passage(row, score=_score(row[5])) for row in rows], total

    def _search_hnsw(
        self,
        conn: psycopg.Connection[Any],
        agent: str,
        unit: np.ndarray,
        dims: int,
        limit: int,
        offset: int,
        *,
        explain: bool = False,
    ) -> list[Any]:
        """The HNSW page (``explain``: the plan the server would use for it instead)."""
        d = int(dims)
        with conn.transaction():
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", (str(min(_HNSW_MAX_EF, max(self.ef_search, offset + limit))),)
            )
            if self._iterative:
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
            # The agent filter can look selective to the planner, which would then sort the agent's rows (an
            # exact scan): this path is taken only for archives big enough to want the index, so insist on it.
            for setting in ("enable_sort", "enable_bitmapscan", "enable_seqscan"):
                conn.execute("SELECT set_config(%s, 'off', true)", (setting,))
            return conn.execute(
                ("EXPLAIN " if explain else "")
                + f"SELECT {_PASSAGE_COLUMNS}, embedding::vector({d}) <=> %s::vector({d}) AS distance FROM passages "  # type: ignore[arg-type]
                f"WHERE agent = %s AND dims = {d} ORDER BY embedding::vector({d}) <=> %s::vector({d}) LIMIT %s OFFSET %s",
                (unit, agent, unit, limit, offset),
            ).fetchall()

    @staticmethod
    def _passage(row: Sequence[Any], score: float | None = None) -> Passage:
        return Passage(
            id=int(row[0]), agent=row[1], text=row[2], created_at=_utc(row[3]), metadata=json.loads(row[4]), score=score
        )

    @_guarded
    def embeddings(self, agent: str, ids: Sequence[int]) -> np.ndarray:
        """The stored (unit-length) embeddings of the agent's passages ``ids``, one row each, in that order."""
        wanted = [int(i) for i in ids]
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, embedding FROM passages WHERE agent = %s AND id = ANY(%s)", (agent, wanted)
            ).fetchall()
        found = {int(row[0]): np.asarray(row[1].to_numpy(), dtype=np.float32) for row in rows}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StorageError(f"agent {agent!r} has no passages with ids {missing[:10]} in {self.where}")
        return np.stack([found[i] for i in wanted]) if wanted else np.empty((0, 0), dtype=np.float32)

    @_guarded
    def count_passages(self, agent: str) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM passages WHERE agent = %s", (agent,)).fetchone()[0])  # type: ignore[index]

    def iter_passages(self, agent: str) -> Iterator[Passage]:
        """Every passage of ``agent``, oldest first, read in batches (no cursor is held between them)."""
        last = 0
        while True:
            with self._translate("iter_passages"), self._connection() as conn:
                rows = conn.execute(
                    f"SELECT {_PASSAGE_COLUMNS} FROM passages WHERE agent = %s AND id > %s ORDER BY id LIMIT 1000",
                    (agent, last),
                ).fetchall()
            if not rows:
                return
            batch = [self._passage(row) for row in rows]
            yield from batch
            last = batch[-1].id

    def passage_batches(self, agent: str, *, size: int = 1000) -> Iterator[tuple[list[Passage], np.ndarray]]:
        """``Storage.passage_batches``: one query per batch (no cursor is held between them)."""
        if size < 1:
            raise StorageError(f"a batch needs size >= 1, got {size}")
        last = 0
        while True:
            with self._translate("passage_batches"), self._connection() as conn:
                rows = conn.execute(
                    f"SELECT {_PASSAGE_COLUMNS}, embedding FROM passages WHERE agent = %s AND id > %s ORDER BY id LIMIT %s",
                    (agent, last, size),
                ).fetchall()
            if not rows:
                return
            vectors = [np.asarray(row[5].to_numpy(), dtype=np.float32) for row in rows]
            if len({v.shape for v in vectors}) != 1:
                raise StorageError(f"agent {agent!r} has embeddings of different sizes; its archival memory needs re-embedding")
            passages = [self._passage(row) for row in rows]
            yield passages, np.stack(vectors)
            last = passages[-1].id


def _score(distance: Any) -> float:
    """Cosine similarity from pgvector's cosine distance (an all-zero vector's NaN is no similarity)."""
    value = 1.0 - float(distance) if distance is not None else 0.0
    return 0.0 if math.isnan(value) else value


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _configure(conn: psycopg.Connection[Any]) -> None:
    register_vector(conn)
    conn.execute("SET TIME ZONE 'UTC'")
