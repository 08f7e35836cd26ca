"""The agent: its step loop, context and memory (``memgpt.agent.Agent``), and the events the model reads.

``Agent`` is loaded on first use, so importing ``memgpt.agent.events`` stays light."""

from __future__ import annotations

from typing import Any

__all__ = ["Agent"]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from memgpt.agent.agent import Agent

        return Agent
    raise AttributeError(f"module 'memgpt.agent' has no attribute {name!r}")
