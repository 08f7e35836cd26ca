"""Framework overhead per agent step, with a scripted backend (no model time): prompt build through the
real chatml-grammar wrapper, token counting, parsing, validation, function execution and the SQLite
transaction. Prints the median per step, per step kind, and how it grows as the history grows, beside the
outcome (``TurnResult.outcome()``): turns answered, turns a guard ended with nothing said, memory edits.

Run: .venv/bin/python bench/bench_agent.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MEMGPT_HOME", tempfile.mkdtemp(prefix="memgpt-bench-"))

from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.scripted import ScriptedBackend, call, chat_agent

TURNS = 300
GUARDS = ("repeat", "failures", "chain_limit")  # TurnResult.stopped_by values that end a chain early


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="memgpt-bench-agent-"))
    storage = SQLiteStorage(tmp / "memgpt.db")
    record = AgentRecord(name="bench", core_memory={"persona": "I am a benchmark.", "human": "Name: unknown"})
    storage.save_agent(record)
    backend = ScriptedBackend()
    agent = chat_agent(record, storage, backend, embedder=None, context_window=10_000_000)
    reply_ms: list[float] = []
    edit_ms: list[float] = []
    outcomes: list[dict] = []
    for i in range(TURNS):
        backend.add(call("send_message", "replying", message=f"Reply {i}: " + "words " * 20))
        start = time.perf_counter()
        outcomes.append(agent.send(f"User message {i}: " + "text " * 20).outcome())
        reply_ms.append((time.perf_counter() - start) * 1000)
        if i % 10 == 0:
            backend.add(
                call("core_memory_append", name="human", content=f"fact {i}", request_heartbeat=True),
                call("send_message", message="noted"),
            )
            start = time.perf_counter()
            outcomes.append(agent.send(f"Remember fact {i}").outcome())
            edit_ms.append((time.perf_counter() - start) / 2 * 1000)
    history = len(agent.context_messages())
    print(f"agent step overhead (scripted backend, {TURNS} turns, history grows to {history} messages in context):")
    answered = sum(o["answered"] for o in outcomes)
    silent = sum(o["stopped_by"] in GUARDS and not o["answered"] for o in outcomes)
    print(
        f"  turns answered: {answered}/{len(outcomes)}; ended by a guard with nothing said: {silent}; "
        f"memory edits: {sum(o['memory_edits'] for o in outcomes)}; calls: {sum(o['calls'] for o in outcomes)}"
    )
    print(
        f"  send_message step: median {statistics.median(reply_ms):.2f} ms, p90 {statistics.quantiles(reply_ms, n=10)[-1]:.2f} ms"
    )
    print(f"  memory-edit step (per step of a 2-step chain): median {statistics.median(edit_ms):.2f} ms")
    first, last = statistics.median(reply_ms[:30]), statistics.median(reply_ms[-30:])
    print(f"  first 30 turns median {first:.2f} ms vs last 30 turns {last:.2f} ms (ratio {last / first:.2f}x as history grows)")
    storage.close()


if __name__ == "__main__":
    main()
