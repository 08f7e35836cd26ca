"""Fault suite, backend side: a server misbehaves in the middle of a conversation.

Each case runs a real agent (SQLite, chatml-grammar wrapper, call grammar) against a dialect test server
(tests/dialects: koboldcpp, webui, LM Studio, vLLM speak their documented HTTP API and generate with real
llama.cpp, because the real servers cannot be installed here) and arms one fault before the second turn:
refused connection, timeout, 5xx, a truncated or cut-off body, empty text, a constraint the server ignores.
In every case the user gets a clear error naming the endpoint (or the turn recovers), the user's message
is kept, the stored state is exactly the previous step's, and the next turn works.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from memgpt.agent import events
from memgpt.config import Config, ModelSettings
from memgpt.errors import BackendError
from memgpt.session import AgentOptions, open_session
from tests.figures import record

pytestmark = [pytest.mark.model, pytest.mark.slow]

FAULTS = [
    ("koboldcpp", "http_500"),
    ("vllm", "http_503"),
    ("webui", "slow"),
    ("lmstudio", "truncated"),
    ("koboldcpp", "disconnect"),
    ("vllm", "empty"),
    ("webui", "empty"),
]


def session_for(name: str, url: str, agent: str, *, timeout: float = 60.0) -> Any:
    config = Config(
        model=ModelSettings(
            backend=name,
            endpoint=url,
            wrapper="chatml-grammar",
            max_tokens=96,
            timeout=timeout,
            context_window=4096,
            options={"backoff": 0.0},  # the retries still happen; only their pause goes
        )
    )
    return open_session(config, AgentOptions(name=agent))


def user_texts(session: Any) -> list[str]:
    agent = session.agent
    return [
        events.read(m.content)["message"]
        for m in agent.storage.recent_messages(agent.name, 1000)
        if m.role == "user" and "user_message" in (m.content or "")
    ]


@pytest.mark.parametrize(("dialect", "fault"), FAULTS)
def test_a_server_fault_mid_conversation_loses_nothing(dialect_server: Any, dialect: str, fault: str) -> None:
    server = dialect_server(dialect)
    name = f"{dialect}-{fault}"
    first = session_for(dialect, server.url, name)
    try:
        first.agent.send("Hello, I'm Kim.")
        before = [m.id for m in first.storage.recent_messages(name, 1000)]
    finally:
        first.close()
    # The agent is reopened for the faulty turn (with a short timeout where the fault is a slow server)
    # and again for the retry, as a user restarting memgpt would.
    faulty = session_for(dialect, server.url, name, timeout=3.0 if fault == "slow" else 60.0)
    try:
        server.inject(fault, times=10, seconds=8.0)
        with pytest.raises(BackendError) as caught:
            faulty.agent.send("Please remember I like tea.")
        assert server.url.split("//")[1] in str(caught.value), str(caught.value)
        assert faulty.agent.pending_message == "Please remember I like tea."
        assert [m.id for m in faulty.storage.recent_messages(name, 1000)] == before
    finally:
        server.reset()
        faulty.close()
    after = session_for(dialect, server.url, name)
    try:
        assert after.agent.pending_message == "Please remember I like tea."
        result = after.agent.retry()
        assert result is not None and [e for e in result.events if e.kind == "error"] == []
        assert after.agent.pending_message is None
        assert user_texts(after) == ["Hello, I'm Kim.", "Please remember I like tea."]
        record("backend faults survived mid-conversation", f"{dialect}:{fault}")
    finally:
        after.close()


def test_a_refused_connection_is_one_clear_error(dead_endpoint: str) -> None:
    session = session_for("koboldcpp", dead_endpoint, "refused")
    try:
        with pytest.raises(BackendError) as caught:
            session.agent.send("anyone there?")
        message = str(caught.value)
        assert dead_endpoint.split("//")[1] in message
        assert session.agent.pending_message == "anyone there?"
        record("backend faults survived mid-conversation", "koboldcpp:refused")
    finally:
        session.close()


def test_an_ignored_constraint_is_noticed_and_repaired(dialect_server: Any) -> None:
    """The server answers 200 with text that did not follow the grammar: a call missing its closing
    braces. The agent says once that the grammar was not enforced, repairs the call and carries on."""
    server = dialect_server("lmstudio")
    session = session_for("lmstudio", server.url, "ignored")
    try:
        broken = json.dumps({"function": "send_message", "params": {"inner_thoughts": "hm", "message": "Tea it is"}})[:-2]
        server.inject("replace_text", times=1, text=broken)
        result = session.agent.send("I like tea")
        assert result.replies == ["Tea it is"]
        assert any(e.kind == "alert" and "did not enforce the grammar" in e.text for e in result.events)
        record("backend faults survived mid-conversation", "lmstudio:ignored constraint")
    finally:
        session.close()
