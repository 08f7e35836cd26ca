"""Archival search through the HNSW index: built once when an archive first needs it, used by the planner,
as good as the exact scan on a small archive, and never starved by the agent filter."""

from __future__ import annotations

import numpy as np

from memgpt.storage.base import AgentRecord
from memgpt_storage_postgres.storage import PostgresStorage


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_hnsw_is_built_on_first_need_and_finds_what_the_exact_scan_finds(postgres_uri: str) -> None:
    rng = np.random.default_rng(11)
    store = PostgresStorage(postgres_uri, exact_below=500)
    try:
        for name in ("big", "small"):
            store.save_agent(AgentRecord(name=name))
        vectors = rng.normal(size=(1500, 32)).astype(np.float32)
        big_ids = store.add_passages("big", [f"b{i}" for i in range(1500)], vectors)
        small_ids = store.add_passages("small", [f"s{i}" for i in range(600)], rng.normal(size=(600, 32)))
        with store.pool.connection() as conn:  # bulk inserts do not maintain an index row by row
            assert conn.execute("SELECT to_regclass('passages_hnsw_32')").fetchone()[0] is None
        queries = rng.normal(size=(20, 32))
        hits = 0
        for q in queries:
            found, total = store.search_passages("big", q, limit=10)
            expected = np.argsort(-(unit(vectors) @ unit(q)), kind="stable")[:10]
            assert total == 1500 and len(found) == 10
            assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)  # type: ignore[misc]
            hits += len({p.id for p in found} & {big_ids[i] for i in expected})
        assert hits / 200 >= 0.9  # recall@10 of the approximate index
        with store.pool.connection() as conn:
            assert conn.execute("SELECT to_regclass('passages_hnsw_32')").fetchone()[0] is not None
            q = unit(queries[0]).astype(np.float32)
            plan = "\n".join(row[0] for row in store._search_hnsw(conn, "big", q, 32, 10, 0, explain=True))
        assert "passages_hnsw_32" in plan, plan
        # the small agent's passages are a minority of the index: a page is still full, and only theirs
        found, total = store.search_passages("small", queries[0], limit=10, offset=5)
        assert total == 600 and len(found) == 10 and {p.id for p in found} <= set(small_ids)
        # a passage added after the build is found at once (the index is maintained from then on)
        [new_id] = store.add_passages("big", ["the query itself"], queries[1].reshape(1, -1))
        assert store.search_passages("big", queries[1], limit=1)[0][0].id == new_id
    finally:
        store.close()
