"""CLI cold start: median wall time of `memgpt --help` and `memgpt plugins --json` in fresh processes,
with every workspace plugin installed, against a bare `python -c pass` as the reference.

Target (issue: plugin core): `memgpt --help` well under 0.5 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 9


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def median_of(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    samples = sorted(timed(argv, env) for _ in range(RUNS))
    return statistics.median(samples), samples[-1]


def main() -> None:
    memgpt = shutil.which("memgpt", path=str(Path(sys.executable).parent)) or "memgpt"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MEMGPT_HOME": tmp, "XDG_CACHE_HOME": tmp}
        timed([memgpt, "plugins", "--json"], env)  # warm the entry-point cache once, as any second run has it
        rows = [
            ("python -c pass (reference)", [sys.executable, "-c", "pass"]),
            ("memgpt --help", [memgpt, "--help"]),
            ("memgpt --version", [memgpt, "--version"]),
            ("memgpt plugins --json", [memgpt, "plugins", "--json"]),
        ]
        results = {label: median_of(argv, env) for label, argv in rows}
    reference = results["python -c pass (reference)"][0]
    print(f"CLI cold start, median of {RUNS} fresh processes (max in brackets)")
    for label, (median, worst) in results.items():
        print(f"  {label:32s} {median * 1000:7.1f} ms  [{worst * 1000:6.1f}]  {median / reference:5.1f}x reference")
    help_ms = results["memgpt --help"][0] * 1000
    print(f"memgpt --help target < 500 ms: {'met' if help_ms < 500 else 'NOT met'} ({help_ms:.0f} ms)")


if __name__ == "__main__":
    main()
