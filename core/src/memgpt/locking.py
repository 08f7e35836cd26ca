"""One session per agent: an OS file lock under the memgpt home, held while a session has the agent open.

Two processes driving the same agent would each commit steps from their own view of the context window,
and the last writer would silently drop the other's turns from it (and its core-memory edits). The lock
makes the second one fail at once with a clear message instead. It is a ``flock``/``LockFileEx`` lock
(through ``filelock``), so the operating system releases it when its process dies, ``kill -9`` included:
a crash never leaves an agent locked.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from filelock import FileLock, Timeout

from memgpt.errors import AgentBusyError


def lock_path(home: Path, agent: str) -> Path:
    """The lock file of ``agent``: a readable, file-system-safe stem plus a hash of the exact name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", agent)[:48]
    digest = hashlib.sha256(agent.encode("utf-8")).hexdigest()[:12]
    return home / "locks" / f"{stem}-{digest}.lock"


class AgentLock:
    """Held from ``acquire()`` to ``release()``; ``acquire`` raises ``AgentBusyError`` at once if another
    session holds the agent."""

    def __init__(self, home: Path, agent: str) -> None:
        self.agent = agent
        self.path = lock_path(home, agent)
        self._lock = FileLock(str(self.path), timeout=0, mode=0o600, thread_local=False)

    def acquire(self) -> AgentLock:
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise AgentBusyError(
                f"agent {self.agent!r} is open in another memgpt session; finish that one first (/exit), or pick "
                "another agent with --agent (one session per agent, so no turn overwrites another's)"
            ) from None
        return self

    def release(self) -> None:
        self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> AgentLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
