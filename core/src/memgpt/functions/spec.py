"""The agent-function contract registered through ``register_functions``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memgpt.llm.types import FunctionSchema


@dataclass(frozen=True)
class FunctionSpec:
    """A function the agent may call. ``handler(agent, **arguments)`` runs it and returns the text the
    model sees as the result (or raises ``ValueError`` with a message the model sees as a failure).
    ``schema`` is what prompts document and grammars are built from."""

    name: str
    schema: FunctionSchema
    handler: Callable[..., Any]
    plugin: str = ""
