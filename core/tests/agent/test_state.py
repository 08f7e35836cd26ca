"""The agent's saved state (``AgentState``): read and written through one model, stored as the JSON object
earlier versions wrote."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from memgpt.agent.state import AgentState

#: An agent's settings as an earlier version stored them.
OLD = {
    "preset": "memgpt_chat",
    "persona": "sam",
    "human": "basic",
    "model": {"backend": "llamacpp", "context_window": 8192},
    "pending_message": "second question",
    "pending_earlier": ["first question"],
    "heartbeats_paused_until": 1767225600,
    "core_memory_shown": {"persona": "I am Sam.", "human": ""},
    "last_login": "2026-01-01 10:00:00 AM UTC+0000",
}


def test_an_old_agents_settings_read_back_and_are_written_unchanged() -> None:
    state = AgentState.load(OLD)
    assert state.preset == "memgpt_chat" and state.model["context_window"] == 8192
    assert state.pending_messages == ["first question", "second question"]
    assert state.heartbeats_paused_until == 1767225600.0
    assert state.dump() == OLD


def test_only_what_is_set_is_stored() -> None:
    state = AgentState(preset="memgpt_chat")
    assert state.dump() == {"preset": "memgpt_chat"}
    state.set_pending("hi", earlier=["hello?"])
    assert state.dump() == {"preset": "memgpt_chat", "pending_message": "hi", "pending_earlier": ["hello?"]}
    state.clear_pending()
    assert state.dump() == {"preset": "memgpt_chat"}


def test_keys_this_version_does_not_know_are_kept() -> None:
    state = AgentState.load({"preset": "p", "written_by_a_newer_memgpt": {"x": [1, None]}})
    assert state.dump() == {"preset": "p", "written_by_a_newer_memgpt": {"x": [1, None]}}


def test_an_unreadable_value_is_dropped_with_a_warning_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="memgpt.agent"):
        state = AgentState.load({"preset": "p", "pending_message": 5, "pending_earlier": "not a list"})
    assert state.dump() == {"preset": "p"} and state.pending_messages == []
    assert "pending_earlier, pending_message" in caplog.text


def test_assignments_are_validated() -> None:
    state = AgentState()
    bad: Any = ["not", "a", "number"]
    with pytest.raises(ValueError):
        state.heartbeats_paused_until = bad
