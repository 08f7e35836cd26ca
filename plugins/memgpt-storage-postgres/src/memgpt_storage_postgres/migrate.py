"""``memgpt migrate --to postgres --storage-uri ...``: copy the SQLite store under the memgpt home into a
PostgreSQL database: every agent, message, passage and embedding, with their times.

Each agent is copied in one PostgreSQL transaction (all of it or none of it), holding its session lock so
no session writes to it meanwhile. Messages get new ids there; the agent's context list is mapped onto
them. Afterwards the counts of every agent are compared and a sample of embeddings read back and compared
with the source. The SQLite file is only read. The config is not changed: the command prints the
``memgpt configure`` line that switches to the new store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import typer

from memgpt.errors import StorageError

_MESSAGE_BATCH = 5000
_PASSAGE_BATCH = 2000


@dataclass
class Copied:
    agents: int = 0
    messages: int = 0
    passages: int = 0
    vectors_checked: int = 0
    names: list[str] = field(default_factory=list)


def _source_passages(source: Any, agent: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """(id, text, embedding bytes, created_at text, metadata text) rows of SQLite passages after ``after``."""
    rows: list[tuple[Any, ...]] = source.conn.execute(
        "SELECT id, text, embedding, created_at, metadata FROM passages WHERE agent = ? AND id > ? ORDER BY id LIMIT ?",
        (agent, after, limit),
    ).fetchall()
    return rows


def copy_agent(source: Any, target: Any, name: str) -> tuple[int, int, dict[int, int]]:
    """Copy agent ``name`` (one transaction on ``target``): (messages, passages, source → target passage ids)."""
    import json

    import numpy as np

    from memgpt.storage._schema import from_text

    record = source.get_agent(name)
    if record is None:
        raise StorageError(f"agent {name!r} vanished from the source while it was being copied")
    in_context = list(record.in_context)
    passage_ids: dict[int, int] = {}
    with target.transaction():
        record.in_context = []
        target.save_agent(record)
        id_map: dict[int, int] = {}
        total = source.count_messages(name)
        messages = source.recent_messages(name, total) if total else []
        for start in range(0, len(messages), _MESSAGE_BATCH):
            batch = messages[start : start + _MESSAGE_BATCH]
            stored = target.add_messages(name, [m.model_copy(update={"id": None}) for m in batch])
            id_map.update({int(old.id): int(new.id) for old, new in zip(batch, stored, strict=True)})
        missing = [i for i in in_context if i not in id_map]
        if missing:
            raise StorageError(f"agent {name!r}'s context list names messages {missing[:10]} the source does not have")
        record.in_context = [id_map[i] for i in in_context]
        target.save_agent(record)
        last, copied = 0, 0
        while rows := _source_passages(source, name, last, _PASSAGE_BATCH):
            matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
            new_ids = target.add_passages(
                name,
                [r[1] for r in rows],
                matrix,
                [json.loads(r[4]) for r in rows],
                created_at=[from_text(r[3]) for r in rows],
            )
            passage_ids.update({int(r[0]): new for r, new in zip(rows, new_ids, strict=True)})
            copied += len(rows)
            last = int(rows[-1][0])
    return len(messages), copied, passage_ids


def verify_agent(source: Any, target: Any, name: str, passage_ids: dict[int, int], sample: int) -> int:
    """Counts equal, and ``sample`` embeddings (spread over the archive) equal; the number of vectors checked."""
    import numpy as np

    for what in ("count_messages", "count_passages"):
        theirs, ours = getattr(source, what)(name), getattr(target, what)(name)
        if theirs != ours:
            raise StorageError(f"agent {name!r}: {what.removeprefix('count_')} differ after the copy ({theirs} → {ours})")
    if not passage_ids or sample <= 0:
        return 0
    old_ids = sorted(passage_ids)
    picks = sorted({old_ids[int(i)] for i in np.linspace(0, len(old_ids) - 1, num=min(sample, len(old_ids)))})
    marks = ",".join("?" * len(picks))
    rows = source.conn.execute(f"SELECT id, embedding FROM passages WHERE id IN ({marks}) ORDER BY id", picks).fetchall()
    expected = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
    copied = target.embeddings(name, [passage_ids[int(r[0])] for r in rows])
    if copied.shape != expected.shape or not np.allclose(copied, expected, atol=1e-6):
        raise StorageError(f"agent {name!r}: embeddings read back from PostgreSQL differ from the source's")
    return len(rows)


def migrate_home(home: Any, uri: str, *, sample: int = 20) -> Copied:
    """Copy ``home``/memgpt.db into the PostgreSQL database ``uri`` (see the module docstring)."""
    import contextlib

    from memgpt.locking import AgentLock
    from memgpt.storage.sqlite import SQLiteStorage
    from memgpt_storage_postgres.storage import PostgresStorage

    path = home / "memgpt.db"
    if not path.is_file():
        raise StorageError(f"there is no SQLite store at {path} to migrate (MEMGPT_HOME={home})")
    result = Copied()
    with contextlib.ExitStack() as stack:
        source = SQLiteStorage(path)
        stack.callback(source.close)
        target = PostgresStorage(uri)
        stack.callback(target.close)
        names = [r.name for r in source.list_agents()]
        taken = sorted(set(names) & {r.name for r in target.list_agents()})
        if taken:
            raise StorageError(
                f"{target.where} already has agents named {', '.join(map(repr, taken[:5]))}"
                f"{' and more' if len(taken) > 5 else ''}; migrate into a database without them (nothing was copied)"
            )
        for name in names:  # no session may write to an agent while it is copied
            stack.enter_context(AgentLock(home, name))
        for name in names:
            messages, passages, passage_ids = copy_agent(source, target, name)
            result.vectors_checked += verify_agent(source, target, name, passage_ids, sample)
            result.agents += 1
            result.messages += messages
            result.passages += passages
            result.names.append(name)
        # archives big enough for the HNSW index get it now, built once in bulk
        for name in names:
            count = target.count_passages(name)
            if count >= target.exact_below:
                first = next(iter(target.iter_passages(name)))
                target.build_index(target.embeddings(name, [first.id]).shape[1])
    return result


def migrate(
    to: str = typer.Option(..., "--to", help="The storage engine to copy into (postgres)."),
    storage_uri: Optional[str] = typer.Option(
        None,
        "--storage-uri",
        help="The PostgreSQL database, e.g. postgresql://user:password@host/db (default: the configured one).",
    ),
    verify_sample: int = typer.Option(20, "--verify-sample", min=0, help="Embeddings per agent read back and compared."),
) -> None:
    """Copy the SQLite store (agents, messages, passages, embeddings) into PostgreSQL; the source is only read."""
    from memgpt.cli.app import fail
    from memgpt.config import home, load_config, load_storage_uri, split_uri_password

    if to != "postgres":
        fail(f"--to {to!r}: this command copies into 'postgres' only", code=2)
    uri = storage_uri
    if uri is None:
        config = load_config()
        secret = load_storage_uri(config.storage) if config.storage.engine == "postgres" else None
        if secret is None:
            fail("give --storage-uri postgresql://user:password@host:5432/db (no PostgreSQL store is configured)", code=2)
        uri = secret.get_secret_value()
    else:
        try:
            split_uri_password(uri)
        except ValueError as exc:
            fail(f"--storage-uri: {exc}", code=2)
    result = migrate_home(home(), uri, sample=verify_sample)
    public, password = split_uri_password(uri)
    typer.echo(
        f"Copied {result.agents} agents, {result.messages} messages and {result.passages} passages; counts match and "
        f"{result.vectors_checked} embeddings read back equal. {home() / 'memgpt.db'} is unchanged."
    )
    typer.echo(
        f"To use it: memgpt configure --storage postgres --storage-uri '{public}'" + (" (with its password)" if password else "")
    )
