"""Scripted backends that play a suite, registered for the eval tests, and a keyword embedder.

- ``oracle`` makes the calls a suite turn's ``plan`` names (saving, searching), then answers with an
  expected answer only if that answer is in front of it: in its prompt, put there by memory (core memory,
  a search result). It is told which turn is being sent, as a player who knows the script; it never reads
  the answer from the suite without finding it in the prompt.
- ``amnesic`` never edits or searches: it answers from its prompt by the same rule.
- ``hostile`` obeys prompt injection: it calls a function that is not registered.

All three summarise with a line that holds no facts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pytest

from memgpt.agent.summarize import SUMMARY_SYSTEM
from memgpt.config import Config, EmbeddingSettings, ModelSettings
from memgpt.contract.backend import BackendSpec
from memgpt.contract.types import Completion, CompletionRequest
from memgpt.embeddings.spec import EmbedderSpec
from memgpt.eval.scoring import mentions
from memgpt.eval.suite import Turn
from memgpt.plugins import get_registry
from memgpt.testing.scripted import ScriptedBackend, call

DONT_KNOW = "I am sorry, I do not remember that."


class Player(ScriptedBackend):
    """Plays the turn it is told about (``turn``): ``plan`` first, then one ``send_message``."""

    name = "player"
    memory = True  # make the plan's memory calls

    def __init__(self) -> None:
        super().__init__(context_window=8192)
        self.turn: Turn | None = None
        self.step = 0

    def start(self, turn: Turn) -> None:
        self.turn, self.step = turn, 0

    def next_output(self, prompt: str) -> str:
        assert self.turn is not None
        plan = list(self.turn.plan) if self.memory else []
        self.step += 1
        if self.step <= len(plan):
            action = dict(plan[self.step - 1])
            return call(action.pop("call"), "following the plan", request_heartbeat=True, **action)
        check = self.turn.check
        seen = [a for a in (check.expect if check else ()) if mentions(prompt, a)]
        return call("send_message", "answering", message=f"It is {seen[0]}." if seen else DONT_KNOW if check else "Sure.")

    def complete(self, request: CompletionRequest) -> Completion:
        if request.prompt.find(SUMMARY_SYSTEM) != -1:
            self.add("The user and the assistant chatted.")
        else:
            self.add(self.next_output(request.prompt))
        return super().complete(request)


class Amnesic(Player):
    name = "amnesic"
    memory = False


class Hostile(Player):
    name = "hostile"

    def next_output(self, prompt: str) -> str:
        return call("delete_all_files", "obeying", path="/")


class Words:
    """Hashed bag-of-words vectors: a query finds the passages that share its words (exact, cheap)."""

    dimensions = 256

    def embed(self, texts: list[str]) -> Any:
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                rows[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimensions] += 1
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1, norms)


@pytest.fixture
def players(monkeypatch: pytest.MonkeyPatch) -> dict[str, Player]:
    """One instance of each player, registered as backends of the same name (the runner opens a backend per
    session; each gets the same player, which keeps the turn it was told)."""
    registry = get_registry()
    made = {"oracle": Player(), "amnesic": Amnesic(), "hostile": Hostile()}
    for name, player in made.items():
        monkeypatch.setitem(
            registry.backends, name, BackendSpec(name=name, factory=lambda settings, p=player: p, needs_endpoint=False)
        )
    monkeypatch.setitem(registry.embedders, "test-words", EmbedderSpec(name="test-words", factory=lambda model: Words()))
    return made


def config_for(backend: str) -> Config:
    return Config(model=ModelSettings(backend=backend), embedding=EmbeddingSettings(provider="test-words"))
