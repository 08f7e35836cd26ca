"""An agent on a real SQLite file and the real chatml-grammar wrapper, driven by a scripted backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memgpt.agent.agent import Agent, Limits
from memgpt.functions.memory import FUNCTIONS
from memgpt.memory.core import CoreMemory
from memgpt.plugins import get_registry
from memgpt.runtime import load_preset, open_wrapper
from memgpt.storage.base import AgentRecord
from memgpt.testing.scripted import LetterEmbedder, ScriptedBackend


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
        name: str = "sam", *, context_window: int = 8192, limits: Limits = Limits(), wrapper: str = "chatml-grammar", embedder: Any = LetterEmbedder,
        functions: Any = FUNCTIONS,
    ) -> Agent:
        record = storage.get_agent(name)
        if record is None:
            core = CoreMemory.from_dict({"persona": "I am Sam.", "human": "Name: unknown\nLikes: tea"})
            record = AgentRecord(name=name, settings={"preset": "memgpt_chat"}, core_memory=core.to_dict())
            storage.save_agent(record)
        return Agent(
            record,
            storage=storage,
            backend=backend,
            wrapper=open_wrapper(wrapper),
            system_prompt=load_preset("memgpt_chat").system,
            functions=functions,
            build_constraint=get_registry().grammar("call").build,
            embedder=embedder,
            context_window=context_window,
            limits=limits,
        )

    return make
