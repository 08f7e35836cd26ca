"""An agent on a real SQLite file and the real chatml-grammar wrapper, driven by a scripted backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memgpt.agent.agent import Agent, Limits
from memgpt.functions.memory import FUNCTIONS
from memgpt.memory.core import CoreMemory
from memgpt.storage.base import AgentRecord
from memgpt.testing.scripted import LetterEmbedder, ScriptedBackend, chat_agent


@pytest.fixture
def storage(tmp_path: Path):  # type: ignore[no-untyped-def]
    from memgpt.storage.sqlite import SQLiteStorage

    store = SQLiteStorage(tmp_path / "memgpt.db")
    yield store
    store.close()


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def make_agent(storage: Any, backend: ScriptedBackend) -> Callable[..., Agent]:
    def make(
        name: str = "sam",
        *,
        context_window: int = 8192,
        limits: Limits = Limits(reply_step=False),
        wrapper: str = "chatml-grammar",
        embedder: Any = LetterEmbedder,
        functions: Any = FUNCTIONS,
    ) -> Agent:
        record = storage.get_agent(name)
        if record is None:
            core = CoreMemory.from_dict({"persona": "I am Sam.", "human": "Name: unknown\nLikes: tea"})
            record = AgentRecord(name=name, settings={"preset": "memgpt_chat"}, core_memory=core.to_dict())
            storage.save_agent(record)
        return chat_agent(
            record,
            storage,
            backend,
            wrapper=wrapper,
            functions=functions,
            embedder=embedder,
            context_window=context_window,
            limits=limits,
        )

    return make
