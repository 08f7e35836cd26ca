"""The Storage protocol: agents, recall messages and archival passages.

The default engine is SQLite (``memgpt.storage.sqlite``); a plugin can register another through
``register_storage``. Every write of one agent step happens inside ``transaction()``: either all of it
lands or none of it does (a crash mid-step leaves the agent at its previous step).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Protocol, runtime_checkable

from memgpt.contract.types import Message, utcnow


@dataclass
class AgentRecord:
    """An agent's persistent state.

    ``settings``: preset, persona/human names, model overrides (JSON-able). ``core_memory``: block name →
    text (``persona``, ``human``). ``in_context``: ids of the recall messages currently in the context
    window, oldest first (the system prompt is rebuilt, not stored here).
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    core_memory: dict[str, str] = field(default_factory=dict)
    in_context: list[int] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class Passage:
    """One archival-memory passage; ``score`` is the cosine similarity when it comes from a search."""

    id: int
    agent: str
    text: str
    created_at: datetime = field(default_factory=utcnow)
    score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Storage(Protocol):
    """Where agents and their memory live. Every failure of the engine is a ``StorageError``.

    Messages and passages belong to an agent that was saved first (``save_agent``); storing memory for
    an unknown agent is a ``StorageError``. Datetimes come back timezone-aware in UTC.
    """

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all; nested use joins the outer transaction (an
        exception inside a nested block undoes that block's writes and propagates; nothing commits before
        the outermost block ends)."""

    # agents
    def save_agent(self, record: AgentRecord) -> None:
        """Insert or update the agent (an update keeps its messages and passages)."""

    def get_agent(self, name: str) -> AgentRecord | None: ...
    def list_agents(self) -> list[AgentRecord]:
        """Every agent, sorted by name."""

    def delete_agent(self, name: str) -> bool:
        """Delete the agent and all its messages and passages; False if there was none."""

    # recall memory
    def add_messages(self, agent: str, messages: Sequence[Message]) -> list[Message]:
        """Store new messages (``id`` None); returns them with their ``id`` set (increasing, never reused)."""

    def get_messages(self, agent: str, ids: Sequence[int]) -> list[Message]:
        """Messages by id, in the order of ``ids``; an id the agent does not have is a ``StorageError``."""

    def count_messages(self, agent: str) -> int: ...
    def recent_messages(self, agent: str, limit: int) -> list[Message]:
        """The last ``limit`` messages, oldest first."""

    def search_messages(self, agent: str, query: str, *, limit: int = 5, offset: int = 0) -> tuple[list[Message], int]:
        """Full-text search over the conversation: the text of user messages (``user_message`` events or
        plain text) and what the assistant said with ``send_message`` — not JSON keys, heartbeats, function
        results or inner thoughts. Any text is a valid query. Best match first; one page and the total
        number of matches."""

    def messages_between(
        self, agent: str, start: date, end: date, *, limit: int = 5, offset: int = 0, tz: tzinfo = UTC
    ) -> tuple[list[Message], int]:
        """Conversation messages (those ``search_messages`` indexes) whose date in ``tz`` is in
        ``[start, end]`` (both inclusive; a reversed range means the same days), oldest first; one page
        and the total."""

    # archival memory
    def add_passages(
        self, agent: str, texts: Sequence[str], embeddings: Any, metadata: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        """Store passages with their embeddings (``numpy`` array, one row per text; normalised on the way
        in). All of an agent's embeddings must have the same size (else ``StorageError``)."""

    def search_passages(self, agent: str, embedding: Any, *, limit: int = 5, offset: int = 0) -> tuple[list[Passage], int]:
        """Passages by cosine similarity to ``embedding`` (``Passage.score``), best first; one page and the
        total. A passage added before the call is always found by it."""

    def count_passages(self, agent: str) -> int: ...
    def iter_passages(self, agent: str) -> Iterator[Passage]:
        """Every passage of the agent, oldest first."""

    def passage_batches(self, agent: str, *, size: int = 1000) -> Iterator[tuple[list[Passage], Any]]:
        """Every passage of the agent with its stored embedding, oldest first, in batches of at most ``size``
        (``size`` >= 1, else ``StorageError``): each batch is the passages and a float32 ``numpy`` matrix with
        one row per passage in the same order, the embedding as stored (normalised by ``add_passages``). A
        large archive is read a batch at a time, never whole."""

    def close(self) -> None: ...
