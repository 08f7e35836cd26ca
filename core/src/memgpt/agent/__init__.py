"""The agent: its step loop, context and memory (``memgpt.agent.Agent``, ``TurnResult``, ``AgentEvent``,
``Limits``), and the events the model reads.

They are loaded on first use, so importing ``memgpt.agent.events`` stays light."""

from __future__ import annotations

from typing import Any

__all__ = ["Agent", "AgentEvent", "Limits", "TurnResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from memgpt.agent import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'memgpt.agent' has no attribute {name!r}")
