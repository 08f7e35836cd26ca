"""A terminal that shows the agent at work: ``memgpt run`` in a real pseudo-terminal (pexpect, and tmux for
what stays on screen) on the ``slow`` scripted backend, whose every completion takes a few seconds as a
model on a laptop CPU does. No model runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memgpt.storage.sqlite import SQLiteStorage

pexpect = pytest.importorskip("pexpect")

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"
TIMEOUT = 60


def _ctrl_c_interrupts() -> None:
    """In the child: Ctrl-C interrupts, even when the tests run where SIGINT is ignored (a shell's background
    job), which the child would inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(home: Path, *args: str, slow: float = 3.0) -> pexpect.spawn:
    env = {
        **os.environ,
        "MEMGPT_HOME": str(home),
        "MEMGPT_TEST_SLOW": str(slow),
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "COLUMNS": "120",
        "LINES": "40",
    }
    return pexpect.spawn(
        sys.executable,
        [str(LAUNCHER), *args],
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        timeout=TIMEOUT,
        preexec_fn=_ctrl_c_interrupts,
        dimensions=(40, 120),
    )


def configure_slow(home: Path) -> None:
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), "configure", "--yes", "--backend", "slow"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def finish(child: pexpect.spawn) -> None:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


def stored(home: Path, agent: str) -> tuple[list[str], str | None]:
    """The user messages stored for ``agent``, and its pending message."""
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        messages = storage.recent_messages(agent, 200)
        record = storage.get_agent(agent)
    finally:
        storage.close()
    texts = []
    for m in messages:
        event = json.loads(m.content) if m.role == "user" and m.content else {}
        if event.get("type") == "user_message":
            texts.append(event["message"])
    assert record is not None
    return texts, record.settings.get("pending_message")


def test_a_spinner_shows_the_elapsed_time_and_the_step_while_a_turn_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_slow(home)
    child = spawn(home, "run", "--agent", "sam", "--first")
    child.expect("you")
    child.send("hello\r")
    child.expect(r"generating · \ds · Ctrl-C stops")
    child.expect(r"generating · [1-9]s")  # the clock moves while the model works
    child.expect("reply 1")
    child.expect("you")
    child.send("/exit\r")
    finish(child)


def test_keys_typed_during_a_turn_are_not_echoed_into_it_and_come_back_in_the_next_prompt(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_slow(home)
    child = spawn(home, "run", "--agent", "sam", "--first")
    child.expect("you")
    child.send("hello\r")
    child.expect("generating")
    child.send("typed ahead")  # no Enter: the agent is still working
    child.expect("reply 1")
    assert "typed ahead" not in (child.before or ""), "typed-ahead keys were echoed into the agent's output"
    child.expect("typed ahead")  # the next prompt holds them
    child.send(" and finished\r")
    child.expect("reply 2")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert stored(home, "sam") == (["hello", "typed ahead and finished"], None)


def test_ctrl_c_mid_turn_returns_to_the_prompt_at_once_with_the_message_pending(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_slow(home)
    child = spawn(home, "run", "--agent", "sam", "--first", slow=120)
    child.expect("you")
    child.send("a long question\r")
    child.expect("generating")
    started = time.monotonic()
    child.sendintr()
    child.expect(r"interrupted: .*your message is kept: /retry")
    child.expect("you")
    assert time.monotonic() - started < 20, "Ctrl-C did not stop the turn"
    child.send("/exit\r")
    finish(child)
    assert stored(home, "sam") == ([], "a long question")

    child = spawn(home, "run", "--agent", "sam", "--first", slow=0.1)
    child.expect("Your last message was not answered:.*'a long question'")
    child.expect("you")
    child.send("/retry\r")
    child.expect("reply 1")
    child.expect("you")
    child.send("/exit\r")
    finish(child)
    assert stored(home, "sam") == (["a long question"], None)


def test_scripted_output_has_no_spinner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_slow(home)
    env = {**os.environ, "MEMGPT_HOME": str(home), "MEMGPT_TEST_SLOW": "1.5"}
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), "run", "--agent", "sam", "--first", "--non-interactive"],
        input=b"hello\n",
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert all(json.loads(line) for line in done.stdout.splitlines())
    assert b"generating" not in done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux to read the screen")
def test_a_timed_heartbeat_never_leaves_the_half_typed_line_on_screen(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure_slow(home)
    session = f"memgpt-test-{os.getpid()}"
    command = (
        f"MEMGPT_HOME={home} MEMGPT_TEST_SLOW=1 PROMPT_TOOLKIT_NO_CPR=1 {sys.executable} {LAUNCHER} "
        "run --agent sam --first --heartbeat-every 0.1; echo SESSION-ENDED; sleep 60"
    )

    def screen() -> list[str]:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    def wait_for(text: str) -> list[str]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            lines = screen()
            if any(text in line for line in lines):
                return lines
            time.sleep(0.2)
        pytest.fail(f"{text!r} never appeared: {screen()}")

    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command], check=True)
    try:
        wait_for("you:")
        subprocess.run(["tmux", "send-keys", "-t", session, "half"], check=True)
        lines = wait_for("reply 1")  # the heartbeat's turn (6 s after the start)
        lines = wait_for("you: half")  # the prompt is back, with the half-typed text
        reply = next(i for i, line in enumerate(lines) if "reply 1" in line)
        assert not any("half" in line for line in lines[:reply]), f"the half-typed line stayed above the turn: {lines}"
        subprocess.run(["tmux", "send-keys", "-t", session, " done", "Enter"], check=True)
        wait_for("reply 2")
        subprocess.run(["tmux", "send-keys", "-t", session, "/exit", "Enter"], check=True)
        wait_for("SESSION-ENDED")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert stored(home, "sam") == (["half done"], None)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a thread's signal mask from /proc")
def test_the_spinner_thread_never_takes_ctrl_c() -> None:
    """SIGINT goes to any thread that does not block it; landing in the display's refresh thread, it would
    leave the main thread waiting in C (a socket, a model) until that returned."""
    import io
    import signal

    from rich.console import Console
    from rich.live import Live

    from memgpt.cli.chat import start_live

    live = Live("x", console=Console(file=io.StringIO(), force_terminal=True), refresh_per_second=20)
    start_live(live)
    try:
        thread = live._refresh_thread
        assert thread is not None and thread.native_id is not None
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
        assert blocked & (1 << (signal.SIGINT - 1)), "the refresh thread may receive SIGINT"
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # the main thread still does
    finally:
        live.stop()
