"""The ``FunctionContext`` an agent hands its function handlers: a narrow view of the agent (its name,
core memory, recall search, archival insert and search, the clock, pausing heartbeats), so a handler
cannot reach the loop, the backend or the storage as a whole."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from memgpt.contract.types import Message
from memgpt.memory.core import CoreMemory
from memgpt.storage.base import Passage

if TYPE_CHECKING:
    from memgpt.agent.agent import Agent


class HandlerContext:
    """``memgpt.functions.spec.FunctionContext`` for one agent."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @property
    def name(self) -> str:
        return self._agent.name

    @property
    def core_memory(self) -> CoreMemory:
        return self._agent.core_memory

    def now(self) -> datetime:
        return datetime.now().astimezone()

    def search_recall(self, query: str, *, limit: int, offset: int = 0) -> tuple[list[Message], int]:
        return self._agent.storage.search_messages(self.name, query, limit=limit, offset=offset)

    def recall_between(self, start: date, end: date, *, limit: int, offset: int = 0) -> tuple[list[Message], int]:
        # The user's local days: the events the model reads carry local times.
        local = self.now().tzinfo or UTC
        return self._agent.storage.messages_between(self.name, start, end, limit=limit, offset=offset, tz=local)

    def archival_insert(self, text: str) -> int:
        pieces = self._agent.embedding_chunks(text)
        self._agent.storage.add_passages(self.name, pieces, self._agent.embed(pieces))
        return len(pieces)

    def archival_count(self) -> int:
        return self._agent.storage.count_passages(self.name)

    def archival_search(self, query: str, *, limit: int, offset: int = 0) -> tuple[list[Passage], int]:
        return self._agent.storage.search_passages(self.name, self._agent.embed([query])[0], limit=limit, offset=offset)

    def pause_heartbeats(self, minutes: int) -> str:
        return self._agent.pause_heartbeats(minutes)
