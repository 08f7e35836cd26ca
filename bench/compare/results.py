"""What one run of the conversation through one system leaves behind (both drivers fill these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llama_server import Exchange


@dataclass
class Turn:
    """One user message and everything it caused until the system was ready for the next one."""

    message: str
    seconds: float
    cpu_seconds: float = 0.0  # CPU time of the system's process plus the llama-server's during the turn
    exchanges: list[Exchange] = field(default_factory=list)  # via the proxy (server backends)
    evaluated_tokens: int | None = None  # as the system itself reported it (embedded backend)
    reported_call: bool | None = None  # the system said it ran a function (embedded backend)
    exceptions: list[str] = field(default_factory=list)
    aborted: str = ""  # why the driver had to stop the turn (runaway chain, time limit)


@dataclass
class Run:
    """The conversation through one system / backend / wrapper."""

    label: str
    side: str  # "theirs" | "ours"
    ready_seconds: float  # from process start to ready for the first message (agent created)
    ready_cpu_seconds: float = 0.0  # CPU time the system's process used to get there
    turns: list[Turn] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: str = ""  # the run could not complete: why

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Back from ``dataclasses.asdict`` (the script's ``results.json``)."""
        turns = [Turn(**{**t, "exchanges": [Exchange(**x) for x in t["exchanges"]]}) for t in data["turns"]]
        return cls(**{**data, "turns": turns})
