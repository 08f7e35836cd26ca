"""CLI cold start: CPU time (and wall time) of `memgpt --help`, `memgpt list agents` and `memgpt plugins --json`
in fresh processes, with every workspace plugin installed, against `python -c "import typer"` (the floor: the
CLI framework alone) in the same run.

Target: `memgpt --help` and `memgpt list agents` at most 1.5x the floor's CPU time.

Every row runs once before the timed runs, as any second run of an installed memgpt finds it: the Python
sources compiled to bytecode (into a private PYTHONPYCACHEPREFIX, with PYTHONDONTWRITEBYTECODE unset, so an
editable checkout is timed as an installed wheel runs, not compiling memgpt's sources on every start), the
entry-point cache and the plugin-command cache of `memgpt --help` written, and `memgpt list agents`'s
database created.

    .venv/bin/python bench/bench_cli_startup.py [--runs 9]    # writes bench/results/bench_cli_startup.json
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

TARGET = 1.5


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    memgpt = shutil.which("memgpt", path=str(Path(sys.executable).parent)) or "memgpt"
    rows = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "floor: python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "memgpt --help": [memgpt, "--help"],
        "memgpt list agents": [memgpt, "list", "agents"],
        "memgpt plugins --json": [memgpt, "plugins", "--json"],
    }
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MEMGPT_HOME": tmp, "XDG_CACHE_HOME": tmp, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for argv in rows.values():  # warm every cache once, as any second run has it
            timed(argv, env)
        for _ in range(args.runs):  # interleaved, so load drifts hit every row alike
            for label, argv in rows.items():
                samples[label].append(timed(argv, env))
    figures = {
        label: {
            "wall_ms_median": round(statistics.median(w for w, _ in runs) * 1000, 1),
            "cpu_ms_median": round(statistics.median(c for _, c in runs) * 1000, 1),
        }
        for label, runs in samples.items()
    }
    floor = figures["floor: python -c 'import typer'"]["cpu_ms_median"]
    for row in figures.values():
        row["cpu_x_floor"] = round(row["cpu_ms_median"] / floor, 2)
    print(f"CLI cold start, median of {args.runs} fresh processes")
    for label, row in figures.items():
        print(
            f"  {label:34s} {row['wall_ms_median']:7.1f} ms wall  {row['cpu_ms_median']:7.1f} ms CPU  {row['cpu_x_floor']:5.2f}x floor"
        )
    report = {
        "command": f".venv/bin/python bench/bench_cli_startup.py --runs {args.runs}",
        **_results.machine(("memgpt", "typer", "click")),
        "runs": args.runs,
        "bytecode": "compiled once, before the timed runs, into a private PYTHONPYCACHEPREFIX",
        "target_cpu_x_floor": TARGET,
        "figures": figures,
    }
    print(f"wrote {_results.write('bench_cli_startup', report)}")


if __name__ == "__main__":
    main()
