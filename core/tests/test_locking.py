"""One session per agent: a second session on the same agent fails at once with a clear error (it would
otherwise drop the first one's turns from the context window), and a killed session leaves no lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from memgpt.config import home
from memgpt.errors import AgentBusyError
from memgpt.locking import AgentLock, lock_path

HOLD = """
import sys
from memgpt.config import load_config
from memgpt.session import AgentOptions, open_session
session = open_session(load_config(), AgentOptions(name="shared"))
print("ready", flush=True)
sys.stdin.read()  # hold the session until killed
"""


def memgpt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memgpt", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        timeout=300,
    )


def test_a_second_lock_on_the_same_agent_fails_at_once() -> None:
    first = AgentLock(home(), "sam").acquire()
    with pytest.raises(AgentBusyError, match=r"agent 'sam' is open in another memgpt session; finish that one first"):
        AgentLock(home(), "sam").acquire()
    with AgentLock(home(), "other"):  # other agents are independent
        pass
    first.release()
    with AgentLock(home(), "sam") as again:
        assert again.held


def test_lock_files_are_private_and_distinct_for_every_name() -> None:
    names = ["sam", "Sam", "a/b", "a_b", "../../etc", "日本", "x" * 300]
    paths = {lock_path(home(), n) for n in names}
    assert len(paths) == len(names) and all(p.parent == home() / "locks" for p in paths)
    with AgentLock(home(), "a/b") as lock:
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(lock.path.parent.stat().st_mode) == 0o700


@pytest.mark.model  # the sessions open the in-process SmolLM2 backend
def test_a_running_session_keeps_others_off_its_agent_until_it_dies(tmp_path: Path) -> None:
    """A real second process (`memgpt run`, `memgpt delete`) against a live session on the in-process
    SmolLM2 backend; then the holder is killed with SIGKILL and the agent is free again."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready", (
            holder.stderr.read() if holder.stderr else ""
        )
        busy = memgpt("run", "--agent", "shared", "--first", "--message", "hi")
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines()[-1].startswith("Error: agent 'shared' is open in another memgpt session"), (
            busy.stderr
        )
        assert busy.stdout == ""  # refused before anything ran
        refused = memgpt("delete", "agent", "shared", "--yes")
        assert refused.returncode == 1 and "open in another memgpt session" in refused.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    after = memgpt("run", "--agent", "shared", "--first", "--message", "/memory")  # opens the agent; no turn
    assert after.returncode == 0, after.stderr
    opened = json.loads(after.stdout.splitlines()[0])
    assert (opened["type"], opened["agent"], opened["created"]) == ("session", "shared", False)
    assert memgpt("delete", "agent", "shared", "--yes").returncode == 0


def test_a_session_that_fails_to_open_releases_everything() -> None:
    from memgpt.config import Config, ModelSettings
    from memgpt.errors import UnknownNameError
    from memgpt.session import AgentOptions, open_session

    with pytest.raises(UnknownNameError):
        open_session(Config(model=ModelSettings(wrapper="no-such-wrapper")), AgentOptions(name="sam"))
    with AgentLock(home(), "sam") as lock:  # nothing still holds the agent
        assert lock.held
