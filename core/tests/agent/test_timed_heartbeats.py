"""Timed heartbeats: when one is due, how ``pause_heartbeats`` defers it (persisted with the agent), and
the interactive loop giving the agent its turn while the user is silent (a real pipe as the terminal)."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from memgpt.agent import events
from memgpt.agent.agent import Agent, Limits
from memgpt.cli.chat import LineReader, RichView, run_interactive
from memgpt.contract.types import Completion, CompletionRequest
from memgpt.testing.scripted import ScriptedBackend, call

MakeAgent = Callable[..., Agent]


def contents(storage: Any) -> list[dict[str, Any]]:
    return [events.read(m.content) or {} for m in storage.recent_messages("sam", 1000)]


def test_timed_heartbeats_are_off_by_default(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    assert agent.next_heartbeat_at() is None
    backend.add(call("pause_heartbeats", minutes=30))
    agent.send("Pause for a while")
    result = [c for c in contents(storage) if "status" in c][-1]
    assert result["status"] == "OK" and "off" in result["message"]
    assert "heartbeats_paused_until" not in storage.get_agent("sam").settings


def test_a_heartbeat_is_due_after_the_interval_and_a_pause_defers_it(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent(limits=Limits(heartbeat_minutes=10, reply_step=False))
    before = time.time()
    backend.add(call("send_message", message="ok"))
    agent.send("hi")
    due = agent.next_heartbeat_at()
    assert due is not None and before + 600 <= due <= time.time() + 600

    backend.add(call("pause_heartbeats", minutes=60))
    agent.send("I'm busy for an hour")
    paused_until = storage.get_agent("sam").settings["heartbeats_paused_until"]
    assert paused_until >= before + 3600
    assert agent.next_heartbeat_at() == paused_until
    # the pause is part of the agent: a resumed agent keeps it
    assert make_agent(limits=Limits(heartbeat_minutes=10, reply_step=False)).next_heartbeat_at() == paused_until

    backend.add(call("pause_heartbeats", minutes=0))
    agent.send("back now")
    assert agent.next_heartbeat_at() < time.time() + 601


def test_a_timed_heartbeat_is_an_event_in_recall(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent(limits=Limits(heartbeat_minutes=1, reply_step=False))
    backend.add(call("archival_memory_insert", content="quiet afternoon", request_heartbeat=False))
    result = agent.timed_heartbeat()
    assert result.steps == 1
    first = contents(storage)[0]
    assert first["type"] == "heartbeat" and first["reason"].startswith(events.HEARTBEAT_TIMED)
    assert f'"reason": "{events.HEARTBEAT_TIMED}: no message for' in backend.requests[0].prompt
    assert storage.count_passages("sam") == 1


class TypingBackend(ScriptedBackend):
    """Types ``lines`` into the terminal pipe when the model is asked for the first time: by then the
    loop has waited out the heartbeat interval, and what the user typed meanwhile is waiting for it."""

    def __init__(self, fd: int, lines: str) -> None:
        super().__init__()
        self.fd, self.lines = fd, lines

    def complete(self, request: CompletionRequest) -> Completion:
        if not self.requests:
            os.write(self.fd, self.lines.encode())
        return super().complete(request)


@pytest.fixture
def pipe() -> Any:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        try:
            os.close(fd)
        except OSError:
            pass


def test_the_interactive_loop_wakes_the_agent_while_the_user_is_silent(make_agent: MakeAgent, storage: Any, pipe: Any) -> None:
    read, write = pipe
    typing = TypingBackend(write, "hello\n/exit\n")
    typing.add(call("send_message", "nobody spoke", message="Still there?"), call("send_message", message="Hello!"))
    agent = make_agent(limits=Limits(heartbeat_minutes=0.01, reply_step=False))
    agent.backend = typing
    view = RichView()
    view.console = Console(file=io.StringIO(), width=200)
    agent.on_event = view.event
    started = time.time()
    run_interactive(SimpleNamespace(agent=agent), view, greet=False, stdin_fd=read)
    assert time.time() - started >= 0.6  # it waited the whole interval before waking the agent
    assert [r.prompt.count(f'"reason": "{events.HEARTBEAT_TIMED}:') for r in typing.requests] == [1, 1]
    assert "hello" in typing.requests[1].prompt
    assert [c.get("type") for c in contents(storage) if c.get("type")] == ["heartbeat", "user_message"]
    shown = view.console.file.getvalue()
    assert shown.index("Still there?") < shown.index("Hello!")
    assert typing.script == []


def test_lines_that_arrive_together_are_read_one_at_a_time(pipe: Any) -> None:
    read, write = pipe
    reader = LineReader(read)
    os.write(write, "first\nsecond ü\r\nthi".encode())
    assert reader.readline(time.time() + 5) == "first"
    # the second line is already buffered: no wait, even with the deadline already past
    assert reader.readline(time.time() - 1) == "second ü"
    assert reader.readline(time.time() + 0.05) is None  # "thi" is not a whole line yet
    os.write(write, b"rd\n")
    os.close(write)
    assert reader.readline(None) == "third"
    with pytest.raises(EOFError):
        reader.readline(None)


def test_a_last_line_without_newline_is_still_read(pipe: Any) -> None:
    read, write = pipe
    reader = LineReader(read)
    os.write(write, json.dumps("tail").encode())
    os.close(write)
    assert reader.readline(None) == '"tail"'
    with pytest.raises(EOFError):
        reader.readline(None)
