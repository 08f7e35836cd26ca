"""``memgpt run`` and ``memgpt configure`` in a real pseudo-terminal (pexpect), on the scripted backend so
no model runs: line editing and history in the chat prompt, the agent picker, and questions that re-ask
instead of failing later."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from memgpt.storage.sqlite import SQLiteStorage

pexpect = pytest.importorskip("pexpect")

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"
UP, LEFT = "\x1b[A", "\x1b[D"
TIMEOUT = 60  # generous: the machine may be busy; nothing here depends on speed


def spawn(home: Path, *args: str) -> pexpect.spawn:
    env = {**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn(
        sys.executable,
        [str(LAUNCHER), *args],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=TIMEOUT,
        dimensions=(40, 120),
    )
    return child


def finish(child: pexpect.spawn) -> None:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def configure_scripted(home: Path) -> None:
    child = spawn(home, "configure", "--yes", "--backend", "scripted")
    finish(child)


def user_texts(home: Path, agent: str) -> list[str]:
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        messages = storage.recent_messages(agent, 200)
    finally:
        storage.close()
    texts = []
    for m in messages:
        if m.role == "user" and m.content:
            event = json.loads(m.content)
            if event.get("type") == "user_message":
                texts.append(event["message"])
    return texts


def test_arrow_keys_edit_and_recall_instead_of_inserting_escape_codes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    child = spawn(home, "run", "--agent", "sam", "--first")
    child.expect("Created agent 'sam'")
    child.expect("you")
    child.send(UP + "/memory\r")  # no history yet: Up does nothing, and the line is the command
    child.expect("Core memory")
    child.expect("you")
    child.send("hello there\r")
    child.expect("reply 1")
    child.expect("you")
    child.send(UP + "\r")  # Up recalls the last line
    child.expect("reply 2")
    child.expect("you")
    child.send("wrld" + LEFT * 3 + "o\r")  # Left moves the cursor
    child.expect("reply 3")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert user_texts(home, "sam") == ["hello there", "hello there", "world"]
    assert "hello there" in (home / "history").read_text()
    assert (home / "history").stat().st_mode & 0o777 == 0o600


def test_a_byte_that_is_not_utf8_typed_at_the_prompt_is_sent_as_a_replacement_character(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    child = spawn(home, "run", "--agent", "sam", "--first")
    child.expect("you")
    os.write(child.child_fd, b"caf\xff au lait\r")
    child.expect("reply 1")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert user_texts(home, "sam") == ["caf\ufffd au lait"]
    assert "caf\ufffd au lait" in (home / "history").read_text(encoding="utf-8")


def test_escape_codes_in_piped_input_never_become_a_message(tmp_path: Path) -> None:
    import subprocess

    home = tmp_path / "home"
    configure_scripted(home)
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), "run", "--agent", "sam", "--first", "--non-interactive"],
        input=b"\x1b[A/memory\n",
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert any(line["type"] == "info" and "Core memory" in line["text"] for line in lines)
    assert user_texts(home, "sam") == []


def test_clean_line_drops_escape_sequences_and_controls() -> None:
    from memgpt.cli.line_input import clean_line

    assert clean_line("\x1b[A/memory") == "/memory"
    assert clean_line("a\x1b[1;5Cb\x1bOAc\x7f\x01d\te") == "abcd\te"
    assert clean_line("café ☕") == "café ☕"


def make_agent(home: Path, name: str) -> None:
    child = spawn(home, "run", "--agent", name, "--first", "--message", "/memory")
    finish(child)


def test_run_without_agent_offers_the_saved_agents_most_recent_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    make_agent(home, "ann")
    make_agent(home, "bob")
    child = spawn(home, "run", "--first")
    child.expect("Saved agents")
    child.expect(r"1\. bob")
    child.expect(r"2\. ann")
    child.expect("blank = a new agent")
    child.sendline("3")
    child.expect("choose 1 to 2")
    child.sendline("2")
    child.expect("Resumed agent 'ann'")
    child.expect("you")
    child.send("/exit\r")
    finish(child)

    child = spawn(home, "run", "--first")
    child.expect("blank = a new agent")
    child.sendline("")
    child.expect(r"Created agent 'agent_\d{8}_\d{6}_\d+'")
    child.expect("you")
    child.send("/exit\r")
    finish(child)


def test_run_without_agent_and_none_saved_creates_one_without_asking(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    child = spawn(home, "run", "--first")
    child.expect(r"Created agent 'agent_")
    child.expect("you")
    child.send("/exit\r")
    finish(child)


def answer_configure(child: pexpect.spawn, answers: dict[str, list[str]]) -> None:
    """Answer each question whose prompt matches a key with its answers in order (then the default)."""
    prompts = [*answers, "Saved "]
    while True:
        i = child.expect(prompts)
        if prompts[i] == "Saved ":
            return
        queue = answers[prompts[i]]
        child.sendline(queue.pop(0) if queue else "")


def test_interactive_configure_explains_each_bad_answer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    child = spawn(home, "configure")
    child.expect("Select LLM backend")
    child.sendline("LlamaCPP")  # any case
    child.expect("Model endpoint")
    child.sendline("not a url")
    child.expect("'not a url' is not a server URL; give one like http://localhost:8080")
    child.expect("Model endpoint")
    child.sendline("http://127.0.0.1:9")
    child.expect("Model \\(name")
    child.sendline("")
    child.expect("Select model wrapper")
    child.sendline("")
    child.expect("Context window")
    child.sendline("abc")
    child.expect("'abc' is not a whole number of tokens")
    child.expect("Context window")
    child.sendline("100")
    child.expect("100 tokens is too small; give at least 256")
    child.expect("Context window")
    child.send("496" + LEFT * 2 + "0\r")  # the arrow keys edit the answer (readline)
    answer_configure(
        child,
        {"Select embedding provider": [], "Select preset": [], "Select persona": [], "Select human": [], "Select storage": []},
    )
    finish(child)
    from memgpt.config import load_config

    model = load_config(home / "config.toml").model
    assert (model.backend, model.endpoint, model.context_window) == ("llamacpp", "http://127.0.0.1:9", 4096)


def test_a_timed_heartbeat_keeps_the_half_typed_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    child = spawn(home, "run", "--agent", "sam", "--first", "--heartbeat-every", "0.05")
    child.expect("you")
    child.send("half")  # no Enter: the heartbeat comes while the line is half typed
    child.expect("reply 1")  # the agent's heartbeat turn
    child.expect("you")
    child.send(" done\r")
    child.expect("reply 2")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert user_texts(home, "sam") == ["half done"]


def test_run_yes_without_agent_creates_a_new_one_without_asking(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    make_agent(home, "ann")
    child = spawn(home, "run", "--first", "--yes")
    child.expect(r"Created agent 'agent_")
    child.expect("you")
    child.send("/exit\r")
    finish(child)


def test_typed_ahead_lines_are_each_sent_and_a_bracketed_paste_is_one_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    child = spawn(home, "run", "--agent", "sam", "--first")
    child.expect("you")
    child.send("one\rtwo\rthree\r")  # arrives at once, as when typed while the agent works
    child.expect("reply 3")
    child.send("\x1b[200~para one\rpara two\x1b[201~\r")  # a terminal's bracketed paste of two lines
    child.expect("reply 4")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert user_texts(home, "sam") == ["one", "two", "three", "para one\npara two"]


def test_agent_listing_in_a_narrow_terminal_keeps_whole_names_and_says_what_it_left_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_scripted(home)
    long_name = "agent_20261202_014330_123456_with_a_long_tail"
    make_agent(home, long_name)
    make_agent(home, "ann")
    env = {**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable, [str(LAUNCHER), "list", "agents"], env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(40, 64)
    )
    finish(child)
    lines = (child.before or "").splitlines()
    named = [line for line in lines if long_name in line]
    assert len(named) == 1 and "scripted" in named[0], child.before  # whole name, and its backend beside it
    assert any(line.strip().startswith("│ ann") for line in lines)
    assert "not shown at this width" in (child.before or "")


def test_the_picker_numbers_the_twenty_most_recent_and_opens_the_rest_by_name(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from memgpt.storage.base import AgentRecord

    home = tmp_path / "home"
    configure_scripted(home)
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        now = datetime.now(UTC)
        for i in range(22):
            record = AgentRecord(
                name=f"a{i:02d}", settings={"model": {"backend": "scripted"}}, core_memory={"persona": "p", "human": "h"}
            )
            record.updated_at = now - timedelta(minutes=i)
            storage.save_agent(record)
    finally:
        storage.close()
    child = spawn(home, "run", "--first")
    child.expect(r"20\. a19")
    child.expect("and 2 more")
    child.expect("blank = a new agent")
    child.sendline("a21")
    child.expect("Resumed agent 'a21'")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
