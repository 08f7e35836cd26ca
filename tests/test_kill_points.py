"""kill -9 at chosen points of a step, a chain and a summary, through ``memgpt run`` itself.

``tests/test_fault_kill.py`` kills at random moments; here the process kills itself exactly where a crash
does the most damage (``MEMGPT_TEST_KILL_AT``, see ``memgpt._faults``): inside a step's transaction after
its messages and memory edit are written, between two steps of a chain, and inside the summary's
transaction after the summary note is written and the older messages are moved out of context. After each
kill: ``PRAGMA integrity_check`` is ok; a step's messages and its memory edit are both stored or both
absent; the unanswered message is kept for ``/retry``; the next session completes a step.

The child is the real console entry point with the real SQLite file, chatml-grammar wrapper and call
grammar, on a backend that answers from the prompt: a user message gets a ``core_memory_append`` of
``fact: <message>`` with a heartbeat, a heartbeat gets ``send_message("done")``, a summary request a
one-line summary. No model runs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from tests.figures import record as record_figure

AGENT = "k"

CHILD = textwrap.dedent(
    """
    import re, sys
    from memgpt import hookimpl, plugins
    from memgpt.agent.summarize import SUMMARY_SYSTEM
    from memgpt.contract.backend import BackendSpec, Capabilities
    from memgpt.testing.scripted import ScriptedBackend, call

    USER = re.compile(r'"type": "user_message", "message": "([^"]*)"')

    class FromPrompt(ScriptedBackend):
        name = "from-prompt"
        capabilities = Capabilities(constraints=("gbnf", "json_schema"), tokenizer=False, context_probe=True)

        def complete(self, request):
            prompt = request.prompt
            if SUMMARY_SYSTEM in prompt:
                self.add("The user shared a few notes to remember.")
            else:
                said = list(USER.finditer(prompt))
                heartbeat = prompt.rfind('"type": "heartbeat"')
                if said and said[-1].start() > heartbeat:
                    fact = "fact: " + said[-1].group(1)
                    self.add(call("core_memory_append", name="human", content=fact, request_heartbeat=True))
                else:
                    self.add(call("send_message", message="done"))
            return super().complete(request)

    @hookimpl
    def register_backends(register):
        register(BackendSpec(name="from-prompt", factory=lambda settings: FromPrompt(context_window=8192),
                             needs_endpoint=False, capabilities=FromPrompt.capabilities))

    load = plugins._load_modules
    plugins._load_modules = lambda failures: [*load(failures), ("kill-points", sys.modules[__name__])]
    from memgpt.cli.app import run
    sys.argv[0] = "memgpt"
    run()
    """
)


def memgpt(*args: str, kill_at: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MEMGPT_TEST_KILL_AT"}
    if kill_at is not None:
        env["MEMGPT_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", CHILD, *args], input=stdin, capture_output=True, text=True, env=env, timeout=180)


def session(*lines: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """``memgpt run --non-interactive`` on the agent with ``lines`` on stdin."""
    return memgpt(
        "run", "--agent", AGENT, "--first", "--non-interactive", kill_at=kill_at, stdin="".join(f"{x}\n" for x in lines)
    )


def said_on_resume(home: Path, pattern: str) -> None:
    """An interactive session (in a pseudo-terminal) shows ``pattern`` before its first prompt."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable,
        ["-c", CHILD, "run", "--agent", AGENT, "--first"],
        env={k: v for k, v in os.environ.items() if k != "MEMGPT_TEST_KILL_AT"} | {"TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 160),
    )
    child.expect(pattern)
    child.expect("you")
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def killed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == -signal.SIGKILL, f"the child was not killed (exit {result.returncode}): {result.stderr}"


def completed(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    out = json_lines(result)
    assert not [e for e in out if e["type"] == "error"], out
    return out


class State:
    """What the database holds for the agent after a session (read after it ended, or died)."""

    def __init__(self, home: Path) -> None:
        db = home / "memgpt.db"
        with sqlite3.connect(db) as conn:
            self.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        storage = SQLiteStorage(db)
        try:
            record = storage.get_agent(AGENT)
            assert record is not None
            self.record: AgentRecord = record
            self.count = storage.count_messages(AGENT)
            self.messages = storage.recent_messages(AGENT, 10_000)
            # the context list points at stored messages only: the agent can be rebuilt
            self.context = storage.get_messages(AGENT, record.in_context)
        finally:
            storage.close()

    @property
    def pending(self) -> str | None:
        value = self.record.settings.get("pending_message")
        return value if isinstance(value, str) else None

    def edit_calls(self, note: str) -> int:
        """Stored ``core_memory_append`` calls for ``note``, and their results: the step's messages."""
        fact = f"fact: {note}"
        calls = [
            m
            for m in self.messages
            if m.function_call is not None
            and m.function_call.name == "core_memory_append"
            and m.function_call.arguments.get("content") == fact
        ]
        return len(calls)

    def remembers(self, note: str) -> bool:
        return f"fact: {note}" in self.record.core_memory["human"]

    def user_messages(self, note: str) -> int:
        return sum(1 for m in self.messages if m.role == "user" and f'"message": "{note}"' in (m.content or ""))

    def summaries(self) -> int:
        return sum(1 for m in self.messages if m.role == "user" and "were moved out of your context window" in (m.content or ""))


def consistent(state: State, note: str) -> bool:
    """The step that edited memory for ``note`` is stored whole or not at all: its call and the edit
    together. True when it is stored."""
    assert state.integrity == "ok"
    calls, edited = state.edit_calls(note), state.remembers(note)
    assert (calls > 0) == edited, f"{note}: {calls} stored calls but memory edited={edited}"
    return edited


@pytest.fixture
def home() -> Path:
    home = Path(os.environ["MEMGPT_HOME"])
    assert memgpt("configure", "--yes", "--backend", "from-prompt").returncode == 0
    out = completed(session("first note"))
    assert [e["text"] for e in out if e["type"] == "assistant"] == ["done"]
    assert consistent(State(home), "first note")
    return home


def test_kill_inside_the_step_transaction_leaves_neither_messages_nor_edit(home: Path) -> None:
    before = State(home)
    killed(session("note one", kill_at="step_commit"))
    after = State(home)
    assert not consistent(after, "note one")
    assert after.count == before.count, "a message of the killed step was stored"
    assert after.record.in_context == before.record.in_context
    assert after.user_messages("note one") == 0
    assert after.pending == "note one", "the message the step was answering is not kept for /retry"

    completed(session("/heartbeat"))  # a chain that does not read the message leaves it pending
    assert State(home).pending == "note one"
    assert not State(home).remembers("note one")

    out = completed(session("/retry"))
    assert [e["text"] for e in out if e["type"] == "assistant"] == ["done"]
    final = State(home)
    assert consistent(final, "note one")
    assert final.pending is None
    assert final.user_messages("note one") == 1
    record_figure("kill -9 at step_commit", "ok")


def test_kill_in_the_second_step_of_a_chain_keeps_the_first(home: Path) -> None:
    before = State(home)
    killed(session("note two", kill_at="step_commit:2"))  # the first step (the edit) committed; the reply's did not
    after = State(home)
    assert consistent(after, "note two")
    assert after.edit_calls("note two") == 1
    # the edit step's input, call and result are stored; the reply step's heartbeat, call and result are not
    assert after.count == before.count + 3
    assert after.context[-1].role == "function" and after.context[-1].name == "core_memory_append"

    out = completed(session("/retry"))  # the chain never answered: /retry sends the message again
    assert [e["text"] for e in out if e["type"] == "assistant"] == ["done"]
    assert State(home).user_messages("note two") == 2


def test_kill_between_steps_of_a_chain(home: Path) -> None:
    before = State(home)
    killed(session("note three", kill_at="chain_next"))
    after = State(home)
    assert consistent(after, "note three")
    assert after.count == before.count + 3
    assert after.user_messages("note three") == 1
    # the first step committed, so the message is in context (not pending): /retry resends it from there
    assert after.pending is None
    said_on_resume(home, "Your last message got no reply:.*'note three'.*/retry sends it again")

    out = completed(session("/retry", "another note"))
    assert [e["text"] for e in out if e["type"] == "assistant"] == ["done", "done"]
    final = State(home)
    assert final.user_messages("note three") == 2
    assert consistent(final, "another note")
    record_figure("kill -9 at chain_next", "ok")


def test_kill_inside_the_summary_transaction(home: Path) -> None:
    completed(session("note four"))
    before = State(home)
    assert len(before.context) > 4  # something to summarize
    killed(session("/summarize", kill_at="summary_commit"))
    after = State(home)
    assert after.integrity == "ok"
    assert after.summaries() == 0, "the summary note of the killed transaction was stored"
    assert after.count == before.count
    assert after.record.in_context == before.record.in_context, "messages left the context without their summary"

    out = completed(session("/summarize", "note five"))
    assert any(e["type"] == "alert" and e["text"].startswith("summarized") for e in out)
    final = State(home)
    assert final.summaries() == 1
    assert len(final.record.in_context) < len(before.record.in_context) + 6
    assert consistent(final, "note five")
    record_figure("kill -9 at summary_commit", "ok")


def test_a_bad_kill_point_is_one_line() -> None:
    result = session("hi", kill_at="nowhere")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "MEMGPT_TEST_KILL_AT='nowhere'" in result.stderr
