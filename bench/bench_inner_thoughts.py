"""What requiring non-empty ``inner_thoughts`` costs and changes, on the default path (SmolLM2 in process).

The default agent's first turn ("Hi! My name is Priya and I live in Lisbon.", the agent's own prompt and
sampling settings), sampled with ``--seeds`` seeds under two call grammars that differ only in
``CallShape.min_inner_thoughts_chars``: 0 (an empty thought allowed, as before) and 1 (the default). Per
grammar: calls with a non-empty thought, calls to ``send_message`` (the user gets an answer), the functions
chosen, completion tokens and seconds per call. Both grammars run interleaved, seed by seed, from the same
KV cache.

    MEMGPT_THREADS=1 .venv/bin/python bench/bench_inner_thoughts.py [--seeds 40]

Writes ``bench/results/bench_inner_thoughts.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results

from memgpt.contract import BackendSettings, CallShape, CompletionRequest
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.testing.scripted import first_request
from memgpt_backend_llamacpp.embedded import EmbeddedBackend

MESSAGE = "Hi! My name is Priya and I live in Lisbon."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args()
    threads = int(os.environ.get("MEMGPT_THREADS", "1"))
    request = first_request(tempfile.mkdtemp(), MESSAGE)
    schemas = [spec.schema for spec in FUNCTIONS]
    budget = shape_for_budget(schemas, request.max_tokens, CallShape())
    grammars = {n: build_call_constraint(schemas, budget.model_copy(update={"min_inner_thoughts_chars": n})) for n in (0, 1)}
    backend = EmbeddedBackend(BackendSettings(threads=threads, options={"quiet": True, "persist_state": False}))
    rows: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    try:
        for seed in range(args.seeds):
            for minimum, constraint in grammars.items():
                sampling = request.sampling.model_copy(update={"seed": seed})
                started = time.perf_counter()
                completion = backend.complete(
                    CompletionRequest(
                        prompt=request.prompt,
                        stop=request.stop,
                        max_tokens=request.max_tokens,
                        sampling=sampling,
                        constraint=constraint,
                    )
                )
                seconds = time.perf_counter() - started
                call = json.loads(completion.text)
                rows[minimum].append(
                    {
                        "function": call["function"],
                        "thought": bool(call["params"].get("inner_thoughts", "").strip()),
                        "tokens": completion.usage.completion_tokens,
                        "seconds": seconds,
                    }
                )
    finally:
        backend.close()
    report: dict[str, Any] = {
        "command": "MEMGPT_THREADS=1 .venv/bin/python bench/bench_inner_thoughts.py --seeds " + str(args.seeds),
        **_results.machine(),
        "threads": threads,
        "message": MESSAGE,
        "sampling": request.sampling.model_dump(exclude={"seed"}),
        "seeds": args.seeds,
        "by_min_inner_thoughts_chars": {},
    }
    for minimum, found in rows.items():
        report["by_min_inner_thoughts_chars"][str(minimum)] = {
            "calls": len(found),
            "non_empty_thoughts": sum(r["thought"] for r in found),
            "send_message": sum(r["function"] == "send_message" for r in found),
            "functions": dict(Counter(r["function"] for r in found).most_common()),
            "completion_tokens_median": statistics.median(r["tokens"] for r in found),
            "completion_tokens_mean": round(statistics.mean(r["tokens"] for r in found), 1),
            "seconds_median": round(statistics.median(r["seconds"] for r in found), 3),
        }
    lines = [
        f"# bench_inner_thoughts ({report['date']}, {report['machine']['cpu']}, {threads} thread(s))",
        "",
        f"`{report['command']}`; first turn of the default agent, {args.seeds} seeds per grammar.",
        "",
        "| min inner_thoughts chars | non-empty thoughts | send_message (answers) | completion tokens, median (mean) | s per call, median |",
        "|---|---|---|---|---|",
    ]
    for minimum, figures in report["by_min_inner_thoughts_chars"].items():
        lines.append(
            f"| {minimum} | {figures['non_empty_thoughts']}/{figures['calls']} | {figures['send_message']}/{figures['calls']} "
            f"| {figures['completion_tokens_median']} ({figures['completion_tokens_mean']}) | {figures['seconds_median']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"wrote {_results.write('bench_inner_thoughts', report, text)}")


if __name__ == "__main__":
    main()
