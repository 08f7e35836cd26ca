"""What one turn of the agent gives back (``TurnResult``, ``AgentEvent``) and the bounds it runs under
(``Limits``); the names are re-exported by ``memgpt.agent``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from memgpt.contract.types import Usage

EventKind = Literal["thought", "call", "assistant", "result", "alert", "error"]
MEMORY_EDITS = frozenset({"core_memory_append", "core_memory_replace", "archival_memory_insert"})
SEARCHES = frozenset({"conversation_search", "conversation_search_date", "archival_memory_search"})


@dataclass(frozen=True)
class AgentEvent:
    """Something the user interface shows: an inner thought, a call, a reply, a result, an alert, an error."""

    kind: EventKind
    text: str
    function: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "text": self.text}
        if self.function:
            out["function"] = self.function
        if self.data:
            out.update(self.data)
        return out


@dataclass(frozen=True)
class Limits:
    """The agent's bounds; every loop it runs is bounded by one of these."""

    max_tokens: int = 1024  # reserved for each model turn
    max_chain: int = 6  # steps one user message may trigger (heartbeats included)
    max_failures: int = 2  # failed calls in a row before control goes back to the user
    parse_retries: int = 2  # re-asks after output that is not a valid call
    warn_fraction: float = 0.75  # memory-pressure alert at this share of the window
    summary_tokens: int = 200
    temperature: float = 0.7
    heartbeat_minutes: float | None = None  # timed heartbeats: wake the agent after this long without a message
    reply_step: bool = True  # a user message the chain left unanswered gets one more step that can only reply


#: Why a chain stopped before the model handed control back itself (``TurnResult.stopped_by``).
StopReason = Literal["repeat", "failures", "chain_limit", "invalid_output"]


@dataclass
class TurnResult:
    """What one user message (or event) led to: the events shown, the steps run, tokens used."""

    events: list[AgentEvent] = field(default_factory=list)
    steps: int = 0
    usage: list[Usage] = field(default_factory=list)
    stopped_by: StopReason | None = None  # a guard ended the chain (None: the model ended it)
    stop_detail: str = ""  # what the guard saw, for the user
    reply_step: bool = False  # the reply came from the send_message-only step that closes an unanswered chain

    @property
    def replies(self) -> list[str]:
        return [e.text for e in self.events if e.kind == "assistant"]

    @property
    def answered(self) -> bool:
        """The user received a reply (a ``send_message``) in this turn."""
        return any(e.kind == "assistant" for e in self.events)

    def outcome(self) -> dict[str, Any]:
        """What the user got from this turn, beside what the mechanism guaranteed (for scripts and benches)."""
        calls = [e for e in self.events if e.kind in ("call", "assistant")]
        return {
            "answered": self.answered,
            "stopped_by": self.stopped_by,
            "reply_step": self.reply_step,
            "calls": len(calls),
            "thoughts": sum(e.kind == "thought" for e in self.events),
            "memory_edits": sum(e.function in MEMORY_EDITS for e in calls),
            "searches": sum(e.function in SEARCHES for e in calls),
        }
