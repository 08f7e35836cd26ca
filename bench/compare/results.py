"""What one run of the conversation through one system leaves behind (both drivers fill these)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
    # What the user got, as the system itself reported it (ours: its events and ``turn`` line). None: not
    # recorded (pymemgpt, whose outcome the report derives from the judge; results from before these fields).
    answered: bool | None = None  # the user received a reply (a send_message)
    stopped_by: str | None = None  # the guard that ended the chain ("repeat", "failures", "chain_limit", ...)
    reply_step: bool | None = None  # the reply came only from the final send_message-only step
    calls: int | None = None  # calls run (send_message included)
    thoughts: int | None = None  # calls with non-empty inner thoughts
    memory_edits: int | None = None  # core_memory_append / core_memory_replace / archival_memory_insert
    searches: int | None = None  # conversation_search / conversation_search_date / archival_memory_search


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
        """Back from ``dataclasses.asdict`` (the script's ``results.json``). Fields an older file lacks take
        their defaults; keys this version does not know are ignored."""
        turns = [
            Turn(**{**_known(Turn, t), "exchanges": [Exchange(**_known(Exchange, x)) for x in t.get("exchanges", [])]})
            for t in data["turns"]
        ]
        return cls(**{**_known(cls, data), "turns": turns})


def _known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}
