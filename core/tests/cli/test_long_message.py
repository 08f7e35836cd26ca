"""A message far longer than the context window (100 KB on the scripted backend's 8192 tokens): the user
is told the limit and that the whole message is kept in recall, the agent still answers, and the next start
does not print the message back whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memgpt.storage.sqlite import SQLiteStorage

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"
LONG = " ".join(f"line {i} of a very long paste." for i in range(3600))[:102_400]


def memgpt(home: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "MEMGPT_HOME": str(home), **env},
        timeout=180,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert memgpt(home, "configure", "--yes", "--backend", "scripted").returncode == 0
    return home


def test_a_message_longer_than_the_window_is_read_in_part_and_kept_whole(home: Path) -> None:
    result = memgpt(home, "run", "--agent", "sam", "--first", "--non-interactive", stdin=LONG + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (alert,) = [e for e in events if e.get("reason") == "message_too_long"]
    assert alert["characters"] == len(LONG) and alert["tokens"] > alert["limit_tokens"] > 0
    assert f"room for about {alert['limit_tokens']} tokens" in alert["text"]
    assert "kept in recall memory" in alert["text"] and "send it in parts" in alert["text"]
    assert "--context-window" not in result.stdout
    assert [e["text"] for e in events if e["type"] == "assistant"] == ["reply 1"]

    storage = SQLiteStorage(home / "memgpt.db")
    try:
        record = storage.get_agent("sam")
        assert record is not None and "pending_message" not in record.settings
        said = [
            json.loads(m.content)["message"]
            for m in storage.recent_messages("sam", 50)
            if m.role == "user" and m.content and json.loads(m.content).get("type") == "user_message"
        ]
        in_context = {m.content for m in storage.get_messages("sam", record.in_context)}
    finally:
        storage.close()
    whole, shown = said
    assert whole == LONG  # in recall, whole
    assert LONG.startswith(shown.split("\n[the user's message is cut here")[0]) and len(shown) < len(LONG) // 2
    assert not any(LONG in (c or "") for c in in_context)  # not in the context window
    assert any("[the user's message is cut here" in (c or "") for c in in_context)


pexpect = pytest.importorskip("pexpect")


def test_an_unanswered_long_message_is_not_printed_back_whole(home: Path) -> None:
    died = memgpt(
        home, "run", "--agent", "sam", "--first", "--non-interactive", stdin=LONG + "\n", MEMGPT_TEST_KILL_AT="step_commit"
    )
    assert died.returncode == -9
    child = pexpect.spawn(
        sys.executable,
        [str(LAUNCHER), "run", "--agent", "sam", "--first"],
        env={**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    child.expect(f"… \\({len(LONG)} characters in all\\)")
    child.expect("you")
    assert len(child.before or "") < 2000
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
