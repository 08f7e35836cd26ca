"""`memgpt eval` baselines: SmolLM2-135M with every -grammar wrapper, in process (llamacpp-embedded) or through
the native llama-server (``--server``), on the built-in suites. Low scores are expected from a 135M model; the
point is a real, reproducible floor to compare other models and wrappers against.

Writes bench/results/bench_eval-<backend>.json (+ .md), or bench_eval-<backend>-<suites>.json when --suite
names some: the scoreboard, every turn's record, the machine, versions and date.

Run: MEMGPT_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_eval.py [--server] [--suite NAME ...]
     [--wrappers a,b | all-grammar] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

from memgpt.config import Config, EmbeddingSettings, ModelSettings
from memgpt.eval import builtin_suites, load_suite, run_suite, scoreboard
from memgpt.plugins import get_registry
from memgpt_backend_llamacpp.models import default_model_path

THREADS = int(os.environ.get("MEMGPT_THREADS", "1"))
BINARY = Path(os.environ.get("MEMGPT_LLAMA_SERVER") or _results.ROOT / ".cache/llama-server/bin/llama-server")


def start_server(model: Path, log: Path, context: int) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(BINARY), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(THREADS),
               "-tb", str(THREADS), "-c", str(context), "-np", "1", "--no-webui"]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"llama-server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"llama-server did not become healthy; see {log}")


def markdown(report: dict) -> str:
    lines = [
        f"# memgpt eval: SmolLM2-135M, {report['backend']}, {report['threads']} thread(s)",
        "",
        f"Written by `{report['command']}` on {report['date']}"
        + ("." if report["complete"] else f", interrupted after {report['runs_done']} of {report['runs_planned']} runs."),
        "",
        "| suite | wrapper | success | valid calls | edits | searches | steps/turn | prompt tok/turn | s/turn | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["scoreboard"]:
        valid = "-" if r["valid_call_rate"] is None else f"{100 * r['valid_call_rate']:.0f}%"
        lines.append(
            f"| {r['suite']} | {r['wrapper']} | {100 * (r['success'] or 0):.0f}% ({r['checks_passed']}/{r['checks']}) | "
            f"{valid} | {r['memory_edits']:.1f} | {r['searches']:.1f} | {r['steps_per_turn'] or 0:.1f} | "
            f"{r['prompt_tokens_per_turn'] or 0:.0f} | {r['seconds_per_turn'] or 0:.1f} | {r['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="store_true", help="through llama-server instead of in process")
    parser.add_argument("--suite", action="append", default=[], help="suite name or file (repeatable); default: all")
    parser.add_argument("--wrappers", default="all-grammar")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    registry = get_registry()
    if args.wrappers == "all-grammar":
        wrappers = sorted(n for n in registry.wrappers if n.endswith("-grammar"))
    else:
        wrappers = [w.strip() for w in args.wrappers.split(",") if w.strip()]
    suites = [load_suite(s) for s in (args.suite or builtin_suites())]
    model = default_model_path()
    process = None
    try:
        if args.server:
            context = max(s.context_window or 4096 for s in suites)
            process, url = start_server(model, Path(tempfile.gettempdir()) / "bench_eval-llama-server.log", context)
            settings = ModelSettings(backend="llamacpp", endpoint=url, threads=THREADS)
        else:
            settings = ModelSettings(backend="llamacpp-embedded", model=str(model), threads=THREADS)
        config = Config(model=settings, embedding=EmbeddingSettings())
        subset = "" if not args.suite else "-" + "-".join(s.name for s in suites)
        planned = [(s.name, w, n) for s in suites for w in wrappers for n in range(args.repeat)]
        runs = []
        path = None
        for suite in suites:
            for wrapper in wrappers:
                for number in range(args.repeat):
                    started = time.monotonic()
                    run = run_suite(config, suite, wrapper, repeat=number)
                    runs.append(run)
                    (row,) = scoreboard([run])
                    print(f"{suite.name:12} {wrapper:32} success {row['checks_passed']}/{row['checks']}  "
                          f"valid {row['valid_call_rate'] or 0:.0%}  {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
                    # Written after every run: an interrupted bench leaves the runs it finished, marked incomplete.
                    report = {
                        **_results.machine(),
                        "command": " ".join(
                            [f"MEMGPT_THREADS={THREADS} HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_eval.py", *sys.argv[1:]]
                        ),
                        "complete": len(runs) == len(planned),
                        "runs_done": len(runs),
                        "runs_planned": len(planned),
                        "backend": settings.backend,
                        "model": model.name,
                        "threads": THREADS,
                        "suites": [{"name": s.name, "checks": s.checks} for s in suites],
                        "wrappers": wrappers,
                        "repeat": args.repeat,
                        "scoreboard": scoreboard(runs),
                        "runs": [r.to_json() for r in runs],
                    }
                    path = _results.write(f"bench_eval-{settings.backend}{subset}", report, markdown(report))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
