"""Results files of the benches: each figure a README or note quotes comes from one of these, written by the
command named in it, with the machine, the versions and the date inside."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine(packages: tuple[str, ...] = ("memgpt", "llama_cpp_python")) -> dict[str, Any]:
    """Date, machine, load and package versions, to put inside a results file."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for dist in packages:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": versions,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def write(name: str, report: dict[str, Any], markdown: str | None = None) -> Path:
    """``bench/results/NAME.json`` (and ``NAME.md`` when given); the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    if markdown is not None:
        (RESULTS / f"{name}.md").write_text(markdown, encoding="utf-8")
    return path
