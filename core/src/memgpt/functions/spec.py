"""The agent-function contract registered through ``register_functions``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from memgpt.contract.types import FunctionSchema


class FunctionContext(Protocol):
    """What a function handler may use of the agent running it (see ``memgpt.agent.Agent``)."""

    name: str
    core_memory: Any  # memgpt.memory.core.CoreMemory
    storage: Any  # memgpt.storage.Storage

    def embed(self, texts: list[str]) -> Any: ...
    def embedding_chunks(self, text: str) -> list[str]: ...
    def pause_heartbeats(self, minutes: int) -> str: ...


@dataclass(frozen=True)
class FunctionSpec:
    """A function the agent may call. ``handler(agent, **arguments)`` runs it and returns the text the
    model sees as the result, or raises ``memgpt.errors.FunctionError`` (``memgpt.plugin.FunctionError``)
    with a message the model sees as a failure. Any other exception is a bug in the handler: the agent logs
    it and the model sees only that the function failed (``function failed: internal error``).
    ``schema`` is what prompts document and grammars are built from; ``inner_thoughts`` and
    ``request_heartbeat`` are handled by the agent and never reach the handler. A call hands control back
    to the user unless it asked for a heartbeat (or failed).
    """

    name: str
    schema: FunctionSchema
    handler: Callable[..., Any]
    plugin: str = ""
