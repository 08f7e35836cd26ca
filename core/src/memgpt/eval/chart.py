"""The scoreboard as a PNG: per suite, task success and valid-call rate for each wrapper (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MISSING = "matplotlib is not installed (pip install 'memgpt[eval]')"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars, one panel per suite; raises ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(dict.fromkeys(r["suite"] for r in rows))
    fig, axes = plt.subplots(len(suites), 1, figsize=(9, 2.2 + 2.6 * len(suites)), squeeze=False)
    for ax, suite in zip(axes[:, 0], suites, strict=True):
        mine = [r for r in rows if r["suite"] == suite]
        names = [r["wrapper"] for r in mine]
        xs = range(len(mine))
        success = [100 * (r["success"] or 0) for r in mine]
        valid = [100 * (r["valid_call_rate"] or 0) for r in mine]
        ax.bar([x - 0.2 for x in xs], success, width=0.4, label="task success %")
        ax.bar([x + 0.2 for x in xs], valid, width=0.4, label="valid calls %")
        for x, r in zip(xs, mine, strict=True):
            ax.text(x - 0.2, success[x] + 1, f"{r['checks_passed']}/{r['checks']}", ha="center", fontsize=8)
        ax.set_xticks(list(xs), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_title(suite, fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
