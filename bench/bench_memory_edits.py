"""Prompt tokens the backend re-evaluates when the agent edits its core memory, on the real in-process
llama.cpp backend (SmolLM2), with the prompt layout the agent uses and with the layout it replaced.

The agent's layout keeps the prompt append-only across edits: an edit's function result carries the
block's new text and the core memory section at the top is refreshed only when the conversation is
rewritten (summary, /pop). The reference run, in the same process, re-renders that section after every
edit (the layout MemGPT uses), so the backend must re-evaluate everything after it.

Both runs send the same 10 user messages; each is answered with a ``core_memory_append`` that asks for a
heartbeat and then a ``send_message``. The model "chooses" exactly these calls: each constrained request
carries a grammar that admits only the scripted call, so generation is real (llama.cpp decodes every
token) but the conversation is the same in both runs, and the figures compare layouts, not the luck of a
135M model. Prints, per layout: prompt tokens evaluated per step (median, after the first turn), the total,
the share of the prompt that was re-evaluated, and wall time; then the ratio.

Run: MEMGPT_THREADS=1 .venv/bin/python bench/bench_memory_edits.py   (writes bench/results/bench_memory_edits.json)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MEMGPT_HOME", tempfile.mkdtemp(prefix="memgpt-bench-"))

from memgpt.agent.agent import Agent, Limits
from memgpt.contract.backend import Backend, BackendSettings
from memgpt.contract.types import Completion, CompletionRequest, Constraint, FunctionCall
from memgpt.grammar.gbnf import gbnf_literal
from memgpt.plugins import get_registry
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.scripted import call, chat_agent

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

TURNS = 10
THREADS = int(os.environ.get("MEMGPT_THREADS", "1"))


class Forced(Backend):
    """The real backend, with each constrained request's grammar narrowed to the next scripted call."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.script: list[str] = []
        self.usage: list[Any] = []  # (prompt_tokens, evaluated_tokens) per agent step

    def complete(self, request: CompletionRequest) -> Completion:
        if request.constraint is not None:
            text = self.script.pop(0)
            request = request.model_copy(update={"constraint": Constraint(gbnf=f"root ::= {gbnf_literal(text)}\n")})
        completion = self.inner.complete(request)
        if request.constraint is not None:
            self.usage.append(completion.usage)
        return completion

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def check(self) -> Any:
        return self.inner.check()

    def context_window(self) -> int | None:
        return self.inner.context_window()


class RerenderOnEdit(Agent):
    """The reference layout: the core memory section is re-rendered as soon as an edit is made."""

    def _execute(self, call: FunctionCall) -> Any:
        outcome = super()._execute(call)
        self._show_current_memory()
        return outcome


def run(kind: type[Agent], backend: Forced, label: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="memgpt-bench-edits-"))
    storage = SQLiteStorage(tmp / "memgpt.db")
    record = AgentRecord(name="bench", core_memory={"persona": "I am Sam, a friendly companion.", "human": "Name: unknown"})
    storage.save_agent(record)
    agent = chat_agent(record, storage, backend, cls=kind, limits=Limits(max_tokens=256))
    backend.usage = []
    start = time.perf_counter()
    for i in range(TURNS):
        backend.script += [
            call(
                "core_memory_append",
                f"note fact {i}",
                name="human",
                content=f"Fact {i}: likes topic number {i}",
                request_heartbeat=True,
            ),
            call("send_message", "reply", message=f"Noted fact {i}."),
        ]
        result = agent.send(f"Here is fact {i}: I like topic number {i}.")
        assert [e.text for e in result.events if e.kind == "error"] == [], result.events
    wall = time.perf_counter() - start
    storage.close()
    steady = backend.usage[2:]  # after the first turn, whose prefill is cold in both runs
    evaluated = [u.evaluated_tokens or 0 for u in steady]
    prompt = [u.prompt_tokens for u in steady]
    figures = {
        "median": statistics.median(evaluated),
        "total": sum(evaluated),
        "share": sum(evaluated) / sum(prompt),
        "prompt": statistics.median(prompt),
        "wall": wall,
        "steps": len(steady),
    }
    print(
        f"  {label:<32} evaluated per step: median {figures['median']:.0f} of a median {figures['prompt']:.0f}-token prompt; "
        f"total {figures['total']:.0f} over {len(steady)} steps ({figures['share']:.1%} of prompt tokens); wall {wall:.1f} s"
    )
    return figures


def main() -> None:
    spec = get_registry().backend("llamacpp-embedded")
    inner = spec.factory(BackendSettings(threads=THREADS, options={"persist_state": False}))
    inner.check()
    backend = Forced(inner)
    print(f"core-memory edits on every turn, {TURNS} turns (2 steps each), SmolLM2 in process, {THREADS} thread(s):")
    ours = run(Agent, backend, "append-only layout (ours)")
    reference = run(RerenderOnEdit, backend, "re-render on every edit (ref.)")
    ratios = {"evaluated_total": ours["total"] / reference["total"], "wall": ours["wall"] / reference["wall"]}
    print(f"  ratio ours/reference: evaluated tokens {ratios['evaluated_total']:.2f}x, wall time {ratios['wall']:.2f}x")
    inner.close()
    report = {
        "command": f"MEMGPT_THREADS={THREADS} .venv/bin/python bench/bench_memory_edits.py",
        **_results.machine(),
        "threads": THREADS,
        "turns": TURNS,
        "ours": ours,
        "reference": reference,
        "ratios": ratios,
    }
    print(f"wrote {_results.write('bench_memory_edits', report)}")


if __name__ == "__main__":
    main()
