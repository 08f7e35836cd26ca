"""How long the everyday test tier takes: `make test-fast` (no real model, no llama-server or vLLM, nothing
marked slow, spread over the cores with pytest-xdist), run as the Makefile runs it, timed from outside.

Target: under 3 minutes on a 2-core machine. The load average inside the results file says whether the
machine was otherwise idle; a run on a loaded machine reads long.

    .venv/bin/python bench/bench_test_tiers.py    # writes bench/results/bench_test_tiers.json
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

TARGET_SECONDS = 180.0
FAST = "not server and not slow and not model"


def main() -> None:
    env = dict(os.environ, MEMGPT_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HYPOTHESIS_PROFILE="ci")
    before = _results.machine(("memgpt", "pytest", "pytest-xdist"))
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "auto", "-m", FAST, "-p", "no:cacheprovider"],
        cwd=_results.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    report = {
        **before,
        "load_average_after": os.getloadavg(),
        "command": "bench/bench_test_tiers.py",
        "tier": "test-fast",
        "pytest_args": ["-n", "auto", "-m", FAST],
        "wall_seconds": round(wall, 1),
        "target_seconds": TARGET_SECONDS,
        "met": wall <= TARGET_SECONDS and run.returncode == 0,
        "exit_code": run.returncode,
        "tests": counts,
        "summary": summary,
    }
    path = _results.write("bench_test_tiers", report)
    print(f"test-fast: {wall:.0f} s ({summary}); target {TARGET_SECONDS:.0f} s; wrote {path}")
    if run.returncode != 0:
        print(run.stdout[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
