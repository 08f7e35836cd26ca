"""The agent-function contract registered through ``register_functions``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from memgpt.contract.types import FunctionSchema, Message

if TYPE_CHECKING:
    from memgpt.memory.core import CoreMemory
    from memgpt.storage.base import Passage


class FunctionContext(Protocol):
    """What a function handler gets of the agent running it, and nothing more: the agent's name, its core
    memory (an edit takes effect at once), recall search, archival insert and search, the clock, and pausing
    timed heartbeats. Failures the model should read are ``FunctionError``s (an unavailable archival memory
    included)."""

    @property
    def name(self) -> str:
        """The agent's name."""
        ...

    @property
    def core_memory(self) -> CoreMemory:
        """The agent's core memory; edit it with its ``append`` / ``replace`` / ``set``."""
        ...

    def now(self) -> datetime:
        """The current time, in the user's time zone (the one the events the model reads carry)."""
        ...

    def search_recall(self, query: str, *, limit: int, offset: int = 0) -> tuple[list[Message], int]:
        """Past messages matching ``query`` (a page of them) and how many match in all."""
        ...

    def recall_between(self, start: date, end: date, *, limit: int, offset: int = 0) -> tuple[list[Message], int]:
        """Past messages from the user's local days ``start`` to ``end``, both included (a page) and the total."""
        ...

    def archival_insert(self, text: str) -> int:
        """Store ``text`` in archival memory (as overlapping passages when it is longer than the embedder
        reads); the number of passages stored."""
        ...

    def archival_count(self) -> int:
        """How many passages archival memory holds."""
        ...

    def archival_search(self, query: str, *, limit: int, offset: int = 0) -> tuple[list[Passage], int]:
        """The passages nearest ``query`` in meaning (a page of them) and how many there are in all."""
        ...

    def pause_heartbeats(self, minutes: int) -> str:
        """Defer timed heartbeats for ``minutes`` (0 resumes them); the text the model reads."""
        ...


@dataclass(frozen=True)
class FunctionSpec:
    """A function the agent may call. ``handler(context, **arguments)`` runs it (``context`` is a
    ``FunctionContext``) and returns the text the model sees as the result, or raises
    ``memgpt.errors.FunctionError`` (``memgpt.plugin.FunctionError``) with a message the model sees as a
    failure. Any other exception is a bug in the handler: the agent logs it and the model sees only that the
    function failed (``function failed: internal error``).
    ``schema`` is what prompts document and grammars are built from; ``inner_thoughts`` and
    ``request_heartbeat`` are handled by the agent and never reach the handler. A call hands control back
    to the user unless it asked for a heartbeat (or failed). ``uses_archival``: the handler inserts into or
    searches archival memory, so the agent loads its embedder before the step's write transaction (a first
    load takes seconds, and would hold the database that long).
    """

    name: str
    schema: FunctionSchema
    handler: Callable[..., Any]
    plugin: str = ""
    uses_archival: bool = False
