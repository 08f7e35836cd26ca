"""The passage count kept on each agent's row (``agents.passage_count``, schema version 2): right after
inserts, deletes, a rolled-back or refused insert, and after migrating a database made at version 1; archival
search takes its total (and its choice of exact scan or HNSW) from it instead of counting."""

from __future__ import annotations

import numpy as np
import pytest

from memgpt.errors import StorageError
from memgpt.storage.base import AgentRecord
from memgpt_storage_postgres import schema
from memgpt_storage_postgres.storage import PostgresStorage


def kept_and_counted(store: PostgresStorage) -> dict[str, tuple[int, int]]:
    """Agent → (the kept count, the passages really there), as this thread's open transaction sees them."""
    with store._connection() as conn:
        rows = conn.execute(
            "SELECT a.name, a.passage_count, (SELECT count(*) FROM passages p WHERE p.agent = a.name) FROM agents a"
        ).fetchall()
    return {name: (int(kept), int(counted)) for name, kept, counted in rows}


def kept(store: PostgresStorage) -> dict[str, int]:
    both = kept_and_counted(store)
    assert all(k == c for k, c in both.values()), both
    return {name: k for name, (k, _) in both.items()}


def test_the_count_follows_inserts_deletes_and_rollbacks(postgres_uri: str) -> None:
    rng = np.random.default_rng(7)
    store = PostgresStorage(postgres_uri)
    try:
        for name in ("sam", "ana"):
            store.save_agent(AgentRecord(name=name))
        assert kept(store) == {"sam": 0, "ana": 0}
        store.add_passages("sam", [f"s{i}" for i in range(5)], rng.normal(size=(5, 8)))
        store.add_passages("sam", ["one more"], rng.normal(size=(1, 8)))
        store.add_passages("ana", ["a0", "a1"], rng.normal(size=(2, 8)))
        assert kept(store) == {"sam": 6, "ana": 2}
        store.save_agent(AgentRecord(name="sam", core_memory={"human": "saved again"}))  # an upsert keeps it
        assert kept(store) == {"sam": 6, "ana": 2}

        with pytest.raises(RuntimeError), store.transaction():  # a step that fails after its insert
            store.add_passages("sam", ["rolled back", "also"], rng.normal(size=(2, 8)))
            assert kept(store) == {"sam": 8, "ana": 2}  # inside the step, its own insert counts
            raise RuntimeError("step failed")
        assert kept(store) == {"sam": 6, "ana": 2}
        with pytest.raises(StorageError, match="embedding model changed"):  # refused whole
            store.add_passages("sam", ["wrong size"], rng.normal(size=(1, 4)))
        with pytest.raises(StorageError, match="no agent named 'ghost'"):
            store.add_passages("ghost", ["nobody's"], rng.normal(size=(1, 8)))
        assert kept(store) == {"sam": 6, "ana": 2}
        with store.transaction():  # a nested block that fails undoes only its own insert
            store.add_passages("ana", ["kept"], rng.normal(size=(1, 8)))
            with pytest.raises(RuntimeError), store.transaction():
                store.add_passages("ana", ["undone"], rng.normal(size=(1, 8)))
                raise RuntimeError
        assert kept(store) == {"sam": 6, "ana": 3}

        with store.pool.connection() as conn:  # passages deleted by any statement, in one go
            conn.execute("DELETE FROM passages WHERE agent = 'sam' AND text LIKE 's%%'")
        assert kept(store) == {"sam": 1, "ana": 3}
        with store.pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM passages WHERE agent = 'ana' AND text = 'a0'")
            conn.execute("DELETE FROM passages WHERE text IN ('one more', 'a1')")  # two agents at once
        assert kept(store) == {"sam": 0, "ana": 1}

        assert store.delete_agent("ana") is True
        assert kept(store) == {"sam": 0}
        store.save_agent(AgentRecord(name="ana"))  # recreated: a fresh count
        assert kept(store) == {"sam": 0, "ana": 0}
        assert store.search_passages("ana", np.ones(8)) == ([], 0)
        store.add_passages("ana", ["new"], np.ones((1, 8)))
        assert kept(store) == {"sam": 0, "ana": 1} and store.search_passages("ana", np.ones(8))[1] == 1
    finally:
        store.close()


def test_search_takes_its_total_and_its_path_from_the_kept_count(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    store = PostgresStorage(postgres_uri, exact_below=1000)
    try:
        store.save_agent(AgentRecord(name="sam"))
        store.add_passages("sam", [f"p{i}" for i in range(30)], rng.normal(size=(30, 8)))
        built: list[int] = []
        monkeypatch.setattr(store, "build_index", lambda dims, **kwargs: built.append(dims) or False)
        assert store.search_passages("sam", rng.normal(size=8))[1] == 30 and built == []
        with store.pool.connection() as conn:  # a count that says the archive is big: search believes it
            conn.execute("UPDATE agents SET passage_count = 5000 WHERE name = 'sam'")
        found, total = store.search_passages("sam", rng.normal(size=8), limit=3)
        assert total == 5000 and len(found) == 3 and built == [8]  # the HNSW path was asked for
    finally:
        store.close()


class Version1(PostgresStorage):
    migrations = schema.MIGRATIONS[:1]


def test_migrating_a_version_1_database_fills_in_the_counts(postgres_uri: str) -> None:
    rng = np.random.default_rng(9)
    old = Version1(postgres_uri)
    try:
        for name in ("sam", "ana", "empty"):
            old.save_agent(AgentRecord(name=name))
        with old.pool.connection() as conn, conn.transaction():
            assert schema.read_version(conn) == 1
            for name, n in (("sam", 12), ("ana", 3)):
                for i in range(n):  # as version 1's add_passages wrote them
                    conn.execute(
                        "INSERT INTO passages (agent, text, embedding, dims, created_at) VALUES (%s, %s, %s, 8, now())",
                        (name, f"{name} {i}", rng.normal(size=8).astype(np.float32)),
                    )
    finally:
        old.close()
    store = PostgresStorage(postgres_uri)
    try:
        with store.pool.connection() as conn:
            assert schema.read_version(conn) == len(schema.MIGRATIONS) == 2
        assert kept(store) == {"sam": 12, "ana": 3, "empty": 0}
        assert store.search_passages("sam", rng.normal(size=8))[1] == 12
        store.add_passages("empty", ["first"], rng.normal(size=(1, 8)))
        with store.pool.connection() as conn:
            conn.execute("DELETE FROM passages WHERE text = 'sam 0'")
        assert kept(store) == {"sam": 11, "ana": 3, "empty": 1}
    finally:
        store.close()
