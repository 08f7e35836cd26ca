"""Reasoning before the call, three ways, on the same turns (SmolLM2 in process): what each costs and whether
every call is valid.

The default agent's first turn for a few user messages (its own prompt and sampling), each sampled with
``--seeds`` seeds in four modes:

- ``constrained``: the call grammar from token 0 (what every ``-grammar`` wrapper did);
- ``think_grammar``: a thinking block opened in the prompt, then ``think call`` in one grammar (the thinking
  bounded as ``shape_for_budget`` bounds it for the turn's max_tokens);
- ``think_fallback``: the agent's two-request path for a JSON-schema-only backend (thinking unconstrained,
  stopped at ``</think>``; then the call under the JSON schema, continuing the prompt);
- ``repair``: no constraint at all, the output read with the parser's repairs.

Per mode: valid calls, turns with a non-empty thinking block, completion tokens and seconds per turn (each
message's prompt is evaluated once before its turns, untimed, so every mode starts from the same KV cache).

    MEMGPT_THREADS=1 .venv/bin/python bench/bench_reasoning.py [--seeds 3]

Writes ``bench/results/bench_reasoning.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results

from memgpt.agent.agent import Agent
from memgpt.contract import BackendSettings, CallShape, Completion, Constraint
from memgpt.errors import EmptyCompletion, ParseError
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.parsing import parse_call, validate_call
from memgpt.testing.scripted import first_request
from memgpt_backend_llamacpp.embedded import EmbeddedBackend

MESSAGES = (
    "Hi! My name is Priya and I live in Lisbon.",
    "Please remember that my sister is called Ana.",
    "What did I tell you about my job?",
)
OPEN, CLOSE = "<think>\n", "\n</think>\n\n"
MODES = ("constrained", "think_grammar", "think_fallback", "repair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    threads = int(os.environ.get("MEMGPT_THREADS", "1"))
    schemas = [spec.schema for spec in FUNCTIONS]
    requests = [first_request(tempfile.mkdtemp(), message) for message in MESSAGES]
    max_tokens = requests[0].max_tokens
    plain = shape_for_budget(schemas, max_tokens, CallShape())
    thinking = shape_for_budget(
        schemas,
        max_tokens,
        CallShape(think_open="", think_close=CLOSE, max_think_chars=600, min_inner_thoughts_chars=0),
    )
    with_think = build_call_constraint(schemas, thinking)
    shapes = {"constrained": plain, "think_grammar": thinking, "think_fallback": thinking, "repair": CallShape()}
    backend = EmbeddedBackend(BackendSettings(threads=threads, options={"quiet": True, "persist_state": False}))
    # The agent's own fallback (Agent._complete), on a stand-in that has what it reads.
    fallback_agent = SimpleNamespace(backend=backend, _shape=lambda: thinking.model_copy(update={"think_open": OPEN}))
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for turn, request in enumerate(requests):
            # The prompt evaluated once, untimed, so that no mode pays for it (all four continue from its KV cache).
            backend.complete(request.model_copy(update={"max_tokens": 1, "constraint": None}))
            for seed in range(args.seeds):
                sampling = request.sampling.model_copy(update={"seed": seed})
                for mode in MODES:
                    if mode == "constrained":
                        req = request.model_copy(
                            update={"sampling": sampling, "constraint": build_call_constraint(schemas, plain)}
                        )
                    elif mode == "think_grammar":
                        req = request.model_copy(
                            update={"prompt": request.prompt + OPEN, "sampling": sampling, "constraint": with_think}
                        )
                    elif mode == "think_fallback":
                        schema_only = Constraint(json_schema=with_think.json_schema)
                        req = request.model_copy(update={"sampling": sampling, "constraint": schema_only})
                    else:
                        req = request.model_copy(update={"sampling": sampling, "constraint": None})
                    started = time.perf_counter()
                    try:
                        if mode == "think_fallback":
                            completion = Agent._complete(fallback_agent, req)  # type: ignore[arg-type]
                        else:
                            completion = backend.complete(req)
                    except EmptyCompletion:
                        completion = Completion(text="", finish_reason="stop")  # the model ended its turn at once
                    seconds = time.perf_counter() - started
                    rows[mode].append(_row(turn, seed, completion, seconds, schemas, shapes[mode], mode == "think_grammar"))
    finally:
        backend.close()
    report: dict[str, Any] = {
        "command": f"MEMGPT_THREADS={threads} .venv/bin/python bench/bench_reasoning.py --seeds {args.seeds}",
        **_results.machine(),
        "threads": threads,
        "messages": list(MESSAGES),
        "max_tokens": max_tokens,
        "max_think_chars": thinking.max_think_chars,
        "seeds": args.seeds,
        "modes": {},
        "turns": rows,
    }
    for mode, found in rows.items():
        report["modes"][mode] = {
            "turns": len(found),
            "valid_calls": sum(r["valid"] for r in found),
            "with_thinking": sum(r["thinking_chars"] > 0 for r in found),
            "completion_tokens_mean": round(statistics.mean(r["tokens"] for r in found), 1),
            "seconds_mean": round(statistics.mean(r["seconds"] for r in found), 3),
            "seconds_median": round(statistics.median(r["seconds"] for r in found), 3),
        }
    lines = [
        f"# bench_reasoning ({report['date']}, {report['machine']['cpu']}, {threads} thread(s))",
        "",
        f"`{report['command']}`; first turn of the default agent for {len(MESSAGES)} messages, {args.seeds} seeds each,"
        f" max_tokens {max_tokens}, thinking bounded to {thinking.max_think_chars} characters.",
        "",
        "| mode | valid calls | with thinking | completion tokens, mean | s per turn, mean (median) |",
        "|---|---|---|---|---|",
    ]
    for mode, f in report["modes"].items():
        lines.append(
            f"| {mode} | {f['valid_calls']}/{f['turns']} | {f['with_thinking']}/{f['turns']} | {f['completion_tokens_mean']} "
            f"| {f['seconds_mean']} ({f['seconds_median']}) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"wrote {_results.write('bench_reasoning', report, text)}")


def _row(turn: int, seed: int, completion: Any, seconds: float, schemas: Any, shape: CallShape, opened: bool) -> dict[str, Any]:
    text = (OPEN if opened else "") + completion.text
    valid, thinking, function, error = False, 0, None, ""
    try:
        parsed = parse_call(text, schemas, shape)
        validate_call(parsed.call, schemas, shape)
        valid, thinking, function = True, len(parsed.thinking), parsed.call.name
    except ParseError as exc:
        error = str(exc)[:120]
    return {
        "turn": turn,
        "seed": seed,
        "valid": valid,
        "function": function,
        "thinking_chars": thinking,
        "tokens": completion.usage.completion_tokens,
        "seconds": round(seconds, 3),
        "finish": completion.finish_reason,
        "error": error,
    }


if __name__ == "__main__":
    main()
