"""Named points where a test may kill the process (``kill -9``) to prove what a crash there leaves behind.

``MEMGPT_TEST_KILL_AT=<point>[:<n>]`` (read once, at import) makes the process send itself ``SIGKILL`` the
``n``-th time (default the first) it passes ``point``. Unset, ``reached`` is one comparison of a module
global with None. The points:

- ``step_commit``: inside a step's transaction, its messages, memory edit and context written, before COMMIT.
- ``chain_next``: between two steps of a chain (a step committed, the heartbeat that continues it not yet sent).
- ``summary_commit``: inside the summary's transaction, the summary note written and the older messages
  moved out of the context list, before COMMIT.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"step_commit", "chain_next", "summary_commit"})


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS or not (count or "1").isdigit() or int(count or "1") < 1:
        raise SystemExit(f"MEMGPT_TEST_KILL_AT={value!r}: expected one of {sorted(POINTS)}, optionally ':N' (N >= 1)")
    return point, int(count or "1")


_TARGET = _parse(os.environ.get("MEMGPT_TEST_KILL_AT"))
_seen = 0


def reached(point: str) -> None:
    """The process is at ``point``; die here (``SIGKILL``, no cleanup) if a test asked for it."""
    global _seen
    if _TARGET is None or _TARGET[0] != point:
        return
    _seen += 1
    if _seen == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
