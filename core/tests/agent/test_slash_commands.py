"""The chat's slash commands, driven through the scripted (JSON lines) loop on a real SQLite agent: what
each prints, and the exact state of the context window and storage afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from memgpt.agent import events
from memgpt.agent.agent import Agent
from memgpt.cli.chat import JsonView, run_scripted
from memgpt.contract.types import Completion, CompletionRequest, Usage
from memgpt.testing.scripted import ScriptedBackend, call

MakeAgent = Callable[..., Agent]


def run(agent: Agent, capsys: pytest.CaptureFixture[str], *lines: str) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    view = JsonView()
    agent.on_event = view.event
    errors = run_scripted(SimpleNamespace(agent=agent), view, lines, greet=False)
    return errors, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def texts(out: list[dict[str, Any]], kind: str) -> list[str]:
    return [o["text"] for o in out if o["type"] == kind]


def user_messages(agent: Agent) -> list[str]:
    return [
        e["message"]
        for e in map(events.read, (m.content for m in agent.context_messages() if m.role == "user"))
        if e and e.get("type") == "user_message"
    ]


@pytest.fixture
def chatted(make_agent: MakeAgent, backend: ScriptedBackend) -> Agent:
    agent = make_agent()
    backend.add(
        call("send_message", "first thought", message="Hi!"), call("send_message", "second thought", message="Tea is nice.")
    )
    agent.send("hello")
    agent.send("I like tea")
    return agent


def test_memory_shows_both_blocks_and_the_sizes(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/memory")
    block, sizes = texts(out, "info")
    assert '<persona characters="9/2000">\nI am Sam.\n</persona>' in block and "Likes: tea" in block
    assert sizes == "recall: 6 messages; archival: 0 passages"


def test_dump_shows_the_last_n_messages(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/dump 2")
    call_line, result_line = texts(out, "info")
    assert call_line.startswith("[assistant] ") and json.loads(call_line.split(" ", 1)[1])["params"]["message"] == "Tea is nice."
    assert result_line.startswith("[function/send_message] ")
    _, everything = run(chatted, capsys, "/dump")
    assert len(texts(everything, "info")) == 6


def test_dump_prompt_shows_the_whole_prompt_with_its_system_part(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/dump prompt")
    [prompt] = texts(out, "info")
    assert prompt == chatted.render_prompt()
    assert prompt.startswith("<|im_start|>system\n") and "Functions:" in prompt and "Tea is nice." in prompt


@pytest.mark.parametrize("command", ["/dump 0", "/dump x", "/pop 0", "/pop -1", "/pop two"])
def test_a_bad_count_is_a_usage_line_and_changes_nothing(
    chatted: Agent, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    before = [m.id for m in chatted.context_messages()]
    _, out = run(chatted, capsys, command)
    assert texts(out, "info") == []
    (error,) = texts(out, "error")
    assert error.startswith(f"usage: /{command.split()[0][1:]} [n]")
    assert [m.id for m in chatted.context_messages()] == before


def test_pop_removes_exchanges_from_context_but_not_from_recall(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/pop")
    assert texts(out, "info") == ["removed 3 messages from the context window (they stay in recall memory)"]
    assert user_messages(chatted) == ["hello"]
    assert chatted.storage.get_agent("sam").in_context == [m.id for m in chatted.context_messages()]
    assert chatted.storage.count_messages("sam") == 6
    _, out = run(chatted, capsys, "/pop 5")
    assert texts(out, "info") == ["removed 3 messages from the context window (they stay in recall memory)"]
    assert chatted.context_messages() == []


def test_retry_sends_the_last_message_again_in_place_of_its_answer(
    chatted: Agent, backend: ScriptedBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    backend.add(call("send_message", message="Green or black tea?"))
    errors, out = run(chatted, capsys, "/retry")
    assert errors == 0 and texts(out, "assistant") == ["Green or black tea?"]
    assert '"message": "I like tea"' in backend.requests[-1].prompt
    assert user_messages(chatted) == ["hello", "I like tea"]
    assert chatted.storage.count_messages("sam") == 9  # the first answer stays in recall


def test_rethink_replaces_the_last_inner_thoughts(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/rethink I should ask which tea")
    assert texts(out, "info") == ["replaced the inner thoughts of the last call"]
    last_call = [m for m in chatted.context_messages() if m.function_call][-1]
    assert last_call.function_call.arguments == {"inner_thoughts": "I should ask which tea", "message": "Tea is nice."}
    stored = chatted.storage.get_messages("sam", chatted.storage.get_agent("sam").in_context)
    assert [m.function_call.arguments["inner_thoughts"] for m in stored if m.function_call] == [
        "first thought",
        "I should ask which tea",
    ]
    _, out = run(chatted, capsys, "/rethink")
    assert texts(out, "error") == ["usage: /rethink NEW INNER THOUGHTS"]


def test_heartbeat_gives_the_agent_a_turn(chatted: Agent, backend: ScriptedBackend, capsys: pytest.CaptureFixture[str]) -> None:
    backend.add(call("send_message", "nobody spoke", message="Still there?"))
    _, out = run(chatted, capsys, "/heartbeat")
    assert texts(out, "assistant") == ["Still there?"]
    assert '"reason": "user asked for a heartbeat"' in backend.requests[-1].prompt


class Summarizer(ScriptedBackend):
    def complete(self, request: CompletionRequest) -> Completion:
        if request.constraint is None:
            self.requests.append(request)
            return Completion(text="They said hello and like tea.", usage=Usage(prompt_tokens=10))
        return super().complete(request)


def test_summarize_moves_old_messages_behind_a_summary(make_agent: MakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    agent = make_agent()
    agent.backend = summarizer = Summarizer()
    for i in range(4):
        summarizer.add(call("send_message", message=f"Reply {i}"))
        agent.send(f"message {i}")
    _, out = run(agent, capsys, "/summarize")
    (alert,) = texts(out, "alert")
    assert alert.startswith("summarized ")
    first = events.read(agent.context_messages()[0].content)
    assert "They said hello and like tea." in first["message"]
    assert agent.storage.count_messages("sam") > len(agent.context_messages())


def test_unknown_commands_are_errors_and_exit_stops_the_script(chatted: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(chatted, capsys, "/bogus", "/exit", "/memory")
    assert texts(out, "error") == ["unknown command /bogus; try /help"]
    assert texts(out, "info") == []  # nothing after /exit ran
    _, helped = run(chatted, capsys, "/help")
    assert [t.split()[0] for t in texts(helped, "info")] == [
        "/exit",
        "/memory",
        "/dump",
        "/pop",
        "/retry",
        "/rethink",
        "/heartbeat",
        "/summarize",
        "/help",
    ]
