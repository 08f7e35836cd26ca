"""Side-by-side benchmark: the original MemGPT (pymemgpt 0.3.25) and ours, same machine, model and server.

Run by hand, never in the test suite or CI (it creates a 1.7 GB virtualenv the first time):

    .venv/bin/python bench/compare/run.py            # everything (about an hour on 2 busy cores)
    .venv/bin/python bench/compare/run.py --turns 3  # a quick smoke run

It creates ``.cache/bench-compare/pymemgpt-venv`` once (see pymemgpt_env.py and README.md), starts one
llama-server with SmolLM2-135M-Instruct Q4_1 (1 thread, 127.0.0.1) behind a recording proxy, then sends
the same 20 messages (conversation.py) through pymemgpt with ``chatml`` and ``chatml-grammar``, through ours
with the llamacpp backend and the same wrappers, and through ours on the embedded backend; and prints one
Markdown table plus the ratios ours/theirs. Logs, transcripts and raw figures go to ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cputime
import ours
import pymemgpt_env
import report
import theirs
from conversation import MESSAGES
from llama_server import ROOT, LlamaServer
from results import Run

WRAPPERS = ("chatml", "chatml-grammar")
EMBEDDED_WRAPPER = "chatml-grammar"
#: name -> (side, backend, wrapper), in the order they run
CONFIGS = {
    "theirs-chatml": ("theirs", "llamacpp", "chatml"),
    "theirs-chatml-grammar": ("theirs", "llamacpp", "chatml-grammar"),
    "ours-chatml": ("ours", "llamacpp", "chatml"),
    "ours-chatml-grammar": ("ours", "llamacpp", "chatml-grammar"),
    "ours-embedded": ("ours", "llamacpp-embedded", EMBEDDED_WRAPPER),
}


def merge(results: list[dict]) -> dict:
    """Several results.json in one: runs by label (a later file wins), --help timings from the first that has them."""
    merged = dict(results[0])
    runs = {r["label"]: r for result in results for r in result["runs"]}
    merged["runs"] = list(runs.values())
    merged["help"] = {}
    for result in results:
        for side, value in result["help"].items():
            merged["help"].setdefault(side, value)
    merged["measured"] = " and ".join(sorted({r["measured"] for r in results}))
    return merged


def help_ms(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``argv`` (a ``--help``) in fresh processes, after one warm-up run."""
    subprocess.run(argv, env=env, capture_output=True, check=True)
    wall, cpu = [], []
    for _ in range(runs):
        started, cpu_before = time.perf_counter(), cputime.of_children()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((cputime.of_children() - cpu_before) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), no GPU, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    # A plain `kill` should still stop the server and the child processes (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=len(MESSAGES), help="send only the first N messages")
    parser.add_argument("--context", type=int, default=8192, help="context window for both systems and the server")
    parser.add_argument("--help-runs", type=int, default=7, help="fresh processes per --help timing")
    parser.add_argument("--only", choices=("theirs", "ours"), help="run one side only")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, help="run only these configurations")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cache/bench-compare/last-run")
    parser.add_argument(
        "--report-only", type=Path, nargs="+", metavar="RESULTS_JSON",
        help="print the table of earlier runs (several files: merged, a later run of the same configuration wins)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.report_only:
        print_report(merge([json.loads(p.read_text(encoding="utf-8")) for p in args.report_only]))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    messages = list(MESSAGES[: args.turns])
    if args.only != "ours" and any(CONFIGS[c][0] == "theirs" for c in args.configs or CONFIGS):
        pymemgpt_env.ensure_venv()
    print(f"machine: {machine()}", flush=True)

    help_times: dict[str, tuple[float, float]] = {}
    sides = {c[0] for name, c in CONFIGS.items() if (not args.configs or name in args.configs) and args.only in (None, c[0])}
    if "theirs" in sides:
        env = pymemgpt_env.offline_env(args.workdir / "help-home")
        help_times["theirs"] = help_ms([str(pymemgpt_env.memgpt_cli()), "--help"], env, args.help_runs)
    if "ours" in sides:
        help_times["ours"] = help_ms([str(ours.MEMGPT), "--help"], ours.env_for(args.workdir / "help-home-ours"), args.help_runs)
    print(f"CLI --help medians (wall ms, CPU ms): {help_times}", flush=True)

    server = LlamaServer(context=args.context, log_path=args.workdir / "llama-server.log")
    print(f"llama-server: {server.version()} on {server.direct_url}, proxy {server.url}", flush=True)
    runs: list[Run] = []
    results = {
        "measured": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": " ".join([".venv/bin/python", "bench/compare/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "server": server.version(),
        "context": args.context,
        "messages": len(messages),
        "help": help_times,
        "runs": [],
    }
    try:
        plan = [c for name, c in CONFIGS.items() if (not args.configs or name in args.configs) and args.only in (None, c[0])]
        for side, backend, wrapper in plan:
            server.erase_cache()  # no run reuses the previous run's KV cache
            print(f"== {side} {backend} {wrapper}: {len(messages)} messages", flush=True)
            if side == "theirs":
                run = theirs.run(server, wrapper, messages, context=args.context, workdir=args.workdir)
            else:
                embedded = backend == "llamacpp-embedded"
                run = ours.run(
                    None if embedded else server, backend, wrapper, messages, context=args.context, workdir=args.workdir
                )
            runs.append(run)
            results["runs"] = [asdict(r) for r in runs]  # saved after every run: an interrupted session keeps them
            (args.workdir / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
            print(f"   ready {run.ready_seconds:.1f}s, {len(run.turns)} turns, {sum(t.seconds for t in run.turns):.0f}s"
                  + (f", FAILED: {run.failed}" if run.failed else ""), flush=True)  # fmt: skip
    finally:
        server.stop()

    print()
    print_report(results)
    print(f"Logs, transcripts and results.json: {args.workdir}")


def print_report(results: dict) -> None:
    print(report.text(results))


if __name__ == "__main__":
    main()
