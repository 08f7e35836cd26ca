"""An in-memory matrix of one agent's passage embeddings, searched by cosine similarity.

Rows are L2-normalised float32, so cosine similarity is one matrix-vector product. The buffer grows by
doubling, so appending the few passages of an ``archival_memory_insert`` to 100k rows costs no copy of
the whole matrix. Top-k uses ``argpartition`` (linear) and sorts only the k winners.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from memgpt.errors import StorageError

#: A float32 row whose length is this close to 1 is taken as already unit length.
_UNIT_TOLERANCE = 1e-6


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Float32 rows scaled to unit length (an all-zero row stays zero: it matches nothing). A row that is
    unit length already is kept bit for bit (dividing it by its rounded norm would change its last bits),
    so a stored embedding copied into another store (``memgpt export`` / ``import``) stays the same."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[(norms == 0) | (np.abs(norms - 1.0) <= _UNIT_TOLERANCE)] = 1.0
    unit: np.ndarray = matrix / norms
    return unit


def passage_rows(texts: list[str], embeddings: Any, metadata: Sequence[Any] | None = None) -> np.ndarray:
    """The L2-normalised float32 rows of ``add_passages``'s embeddings, after the checks every storage engine
    makes: one finite row per text, and one metadata entry per text when given (``StorageError`` otherwise)."""
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim == 1 and len(texts) == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[0] != len(texts):
        raise StorageError(f"got {len(texts)} passages but embeddings of shape {matrix.shape}; pass one embedding row per text")
    if not np.isfinite(matrix).all():
        raise StorageError("an embedding contains NaN or infinity; the embedder failed on that text, re-embed it")
    if metadata is not None and len(metadata) != len(texts):
        raise StorageError(f"got {len(texts)} passages but {len(metadata)} metadata entries; pass one per text or none")
    return normalize_rows(matrix) if len(texts) else matrix


class VectorIndex:
    """Passage ids and their unit-length embeddings, in insertion (id) order."""

    def __init__(self, dimensions: int, capacity: int = 0):
        self.dimensions = dimensions
        self._ids = np.empty(max(capacity, 16), dtype=np.int64)
        self._rows = np.empty((max(capacity, 16), dimensions), dtype=np.float32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def last_id(self) -> int:
        return int(self._ids[self._n - 1]) if self._n else 0

    def append(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Add rows that are already normalised (``normalize_rows``)."""
        k = len(ids)
        if self._n + k > len(self._ids):
            capacity = max(self._n + k, 2 * len(self._ids))
            new_ids = np.empty(capacity, dtype=np.int64)
            new_rows = np.empty((capacity, self.dimensions), dtype=np.float32)
            new_ids[: self._n] = self._ids[: self._n]
            new_rows[: self._n] = self._rows[: self._n]
            self._ids, self._rows = new_ids, new_rows
        self._ids[self._n : self._n + k] = ids
        self._rows[self._n : self._n + k] = rows
        self._n += k

    def top(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (ids, scores), best first; ties go to the older passage."""
        if self._n == 0 or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores = self._rows[: self._n] @ query
        k = min(k, self._n)
        if k < self._n:
            candidates = np.argpartition(scores, self._n - k)[self._n - k :]  # the k largest, unordered
        else:
            candidates = np.arange(self._n)
        # lexsort: last key is primary; sort by score descending, then by position (older first)
        order = candidates[np.lexsort((candidates, -scores[candidates]))]
        return self._ids[order].copy(), scores[order]


def load_rows(conn: sqlite3.Connection, agent: str, after: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, embeddings) of the agent's passages with id > ``after``, in id order; None if there are none.

    The embeddings are a read-only view of the fetched bytes: ``VectorIndex.append`` copies them once."""
    rows = conn.execute("SELECT id, embedding FROM passages WHERE agent = ? AND id > ? ORDER BY id", (agent, after)).fetchall()
    if not rows:
        return None
    if len({len(blob) for _, blob in rows}) != 1:
        raise StorageError(f"agent {agent!r} has embeddings of different sizes; its archival memory needs re-embedding")
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    return ids, np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4").reshape(len(rows), -1)


class VectorCache:
    """One ``VectorIndex`` per agent, loaded from the passages table once and kept in step with it.

    Never stale: inserts through this connection are appended (``appended``); a rolled-back transaction
    drops the indexes it touched (``rolled_back``); when another connection has committed
    (``PRAGMA data_version`` moved), each cached index is checked against the table before use and
    extended with the new rows, or reloaded if rows went away.
    """

    def __init__(self) -> None:
        self._indexes: dict[str, VectorIndex] = {}
        self._unverified: set[str] = set()
        self._touched: set[str] = set()
        self._data_version: int | None = None

    def cached(self, conn: sqlite3.Connection, agent: str) -> VectorIndex | None:
        """The agent's index if it is loaded (brought up to date first), else None."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._data_version:
            self._data_version = version
            self._unverified = set(self._indexes)
        index = self._indexes.get(agent)
        if index is None or agent not in self._unverified:
            return index
        self._unverified.discard(agent)
        count, last = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM passages WHERE agent = ?", (agent,)).fetchone()
        if (count, last) == (len(index), index.last_id):
            return index
        newer = load_rows(conn, agent, after=index.last_id)
        if newer is not None and len(index) + len(newer[0]) == count and newer[1].shape[1] == index.dimensions:
            index.append(*newer)
            return index
        self._indexes.pop(agent, None)  # rows were deleted or replaced: reload from scratch
        return None

    def get(self, conn: sqlite3.Connection, agent: str) -> VectorIndex | None:
        """The agent's index, loading it if needed; None when the agent has no passages."""
        index = self.cached(conn, agent)
        if index is None:
            loaded = load_rows(conn, agent)
            if loaded is None:
                return None
            index = VectorIndex(loaded[1].shape[1], capacity=len(loaded[0]))
            index.append(*loaded)  # stored rows were normalised when inserted
            self._indexes[agent] = index
        return index

    def appended(self, agent: str, index: VectorIndex | None, ids: list[int], rows: np.ndarray) -> None:
        """Rows were inserted for ``agent`` in the open transaction (``index`` as ``cached`` returned it)."""
        self._touched.add(agent)
        if index is not None:
            index.append(np.asarray(ids, dtype=np.int64), rows)

    def drop(self, agent: str) -> None:
        self._touched.add(agent)
        self._indexes.pop(agent, None)

    def committed(self) -> None:
        self._touched.clear()

    def rolled_back(self) -> None:
        for agent in self._touched:
            self._indexes.pop(agent, None)
        self._touched.clear()

    def clear(self) -> None:
        self._indexes.clear()
        self._touched.clear()
