"""A resumed ``memgpt run --agent NAME`` in a real pseudo-terminal shows the last exchanges (what the user
said and the agent's replies, a line each); scripted and JSON output never carry them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"
PROMPT = r"32;1myou"  # the chat prompt, styled (the history's "you:" lines are dim)
LONG = "word " * 200 + "END-OF-LONG"


def memgpt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    return subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, env=env, timeout=120)


def opening(home: Path, *args: str) -> str:
    """What the terminal shows from the start of ``memgpt run ARGS`` to the first prompt (escapes removed)."""
    env = {**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        sys.executable, [str(LAUNCHER), "run", *args], env=env, encoding="utf-8", timeout=60, dimensions=(40, 120)
    )
    child.expect(PROMPT)
    shown = child.before
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", shown)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert memgpt(home, "configure", "--yes", "--backend", "scripted").returncode == 0
    said = ["first words", "second words", "third\nwords on two lines", "fourth words", LONG]
    made = memgpt(home, "run", "--agent", "sam", "--first", *(arg for text in said for arg in ("-m", text)))
    assert made.returncode == 0, made.stderr
    return home


def test_resuming_in_a_terminal_shows_the_last_three_exchanges(home: Path) -> None:
    shown = opening(home, "--agent", "sam", "--first")
    assert "Resumed agent 'sam'" in shown and "Recent conversation:" in shown
    lines = [line.strip() for line in shown.splitlines()]
    history = lines[lines.index("Recent conversation:") + 1 :]
    said = [line.split(" you: ", 1)[1] if " you: " in line else line for line in history if line]
    assert said[:6] == ["third words on two lines", "sam: reply 3", "fourth words", "sam: reply 4", said[4], "sam: reply 5"]
    assert said[4].startswith("word word") and said[4].endswith("…")
    assert all(len(line) <= 120 for line in history)  # a line each, cut to the terminal's width
    assert "END-OF-LONG" not in shown and "first words" not in shown and "second words" not in shown


def test_a_new_agent_shows_no_history(home: Path) -> None:
    shown = opening(home, "--agent", "newcomer", "--first")
    assert "Created agent 'newcomer'" in shown and "Recent conversation" not in shown


def test_scripted_and_json_output_carry_no_history(home: Path) -> None:
    result = memgpt(home, "run", "--agent", "sam", "--first", "-m", "fifth words")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "session" and events[-1]["type"] == "turn"
    assert "fourth words" not in result.stdout + result.stderr and "Recent conversation" not in result.stdout + result.stderr
    piped = memgpt(home, "run", "--agent", "sam", "--first", "--non-interactive")
    assert piped.returncode == 0 and "fourth words" not in piped.stdout + piped.stderr
