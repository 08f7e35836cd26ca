"""A fresh SQLite store per test, with one saved agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from memgpt.contract.types import FunctionCall, Message
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "memgpt.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStorage]:
    storage = SQLiteStorage(db_path)
    storage.save_agent(AgentRecord(name="sam"))
    yield storage
    storage.close()


def user(text: str, at: datetime | None = None) -> Message:
    event = json.dumps({"type": "user_message", "message": text, "time": "2024-05-01 10:00:00 AM UTC"})
    return Message(role="user", content=event) if at is None else Message(role="user", content=event, created_at=at)


def says(text: str, thoughts: str = "thinking", at: datetime | None = None) -> Message:
    call = FunctionCall(name="send_message", arguments={"inner_thoughts": thoughts, "message": text})
    return (
        Message(role="assistant", function_call=call)
        if at is None
        else Message(role="assistant", function_call=call, created_at=at)
    )
