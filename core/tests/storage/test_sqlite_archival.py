"""Archival memory: cosine search over stored embeddings, paged, never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memgpt.storage.sqlite import SQLiteStorage


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_search_ranks_by_cosine_with_scores(store: SQLiteStorage) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    ids = store.add_passages("sam", [f"p{i}" for i in range(50)], vectors * 3.0)  # not normalised on purpose
    query = rng.normal(size=16)
    expected = np.argsort(-(unit(vectors) @ unit(query)), kind="stable")
    found, total = store.search_passages("sam", query, limit=5)
    assert total == 50
    assert [p.id for p in found] == [ids[i] for i in expected[:5]]
    assert [p.text for p in found] == [f"p{i}" for i in expected[:5]]
    scores = [p.score for p in found]
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert scores[0] == pytest.approx(float(unit(vectors[expected[0]]) @ unit(query)), abs=1e-5)


def test_default_page_is_five_and_pages_do_not_overlap(store: SQLiteStorage) -> None:
    rng = np.random.default_rng(1)
    store.add_passages("sam", [f"p{i}" for i in range(13)], rng.normal(size=(13, 8)))
    query = rng.normal(size=8)
    pages = [store.search_passages("sam", query, offset=o) for o in (0, 5, 10, 15)]
    assert [len(p) for p, _ in pages] == [5, 5, 3, 0]
    assert {t for _, t in pages} == {13}
    ranked = [p.score for page, _ in pages for p in page]
    assert ranked == sorted(ranked, reverse=True)  # type: ignore[type-var]
    assert len({p.id for page, _ in pages for p in page}) == 13


def test_an_insert_by_another_process_is_visible(store: SQLiteStorage, db_path: Path) -> None:
    rng = np.random.default_rng(3)
    store.add_passages("sam", ["old"], rng.normal(size=(1, 8)))
    query = rng.normal(size=8)
    assert store.search_passages("sam", query)[1] == 1  # cached
    other = SQLiteStorage(db_path)  # another connection, as `memgpt load` running beside `memgpt run`
    try:
        [new_id] = other.add_passages("sam", ["new"], query.reshape(1, -1))
    finally:
        other.close()
    found, total = store.search_passages("sam", query, limit=1)
    assert total == 2 and found[0].id == new_id


def test_an_agent_deleted_and_recreated_elsewhere_is_reloaded(store: SQLiteStorage, db_path: Path) -> None:
    from memgpt.storage.base import AgentRecord

    store.add_passages("sam", ["old"], np.ones((1, 4)))
    assert store.search_passages("sam", np.ones(4))[1] == 1
    other = SQLiteStorage(db_path)
    try:
        other.delete_agent("sam")
        other.save_agent(AgentRecord(name="sam"))
        other.add_passages("sam", ["fresh a", "fresh b"], -np.ones((2, 4)))
    finally:
        other.close()
    found, total = store.search_passages("sam", np.ones(4))
    assert total == 2 and {p.text for p in found} == {"fresh a", "fresh b"}


def test_rolled_back_inserts_leave_the_index(store: SQLiteStorage) -> None:
    store.add_passages("sam", ["kept"], np.array([[1.0, 0.0]]))
    assert store.search_passages("sam", np.array([1.0, 0.0]))[1] == 1
    with pytest.raises(RuntimeError), store.transaction():
        store.add_passages("sam", ["rolled back"], np.array([[0.0, 1.0]]))
        assert store.search_passages("sam", np.array([0.0, 1.0]), limit=1)[0][0].text == "rolled back"
        raise RuntimeError("step failed")
    found, total = store.search_passages("sam", np.array([0.0, 1.0]))
    assert total == 1 and [p.text for p in found] == ["kept"]
    assert store.count_passages("sam") == 1
