"""What every part of the agent shares: its components and state, how it reports (events, status) and
how it saves itself. ``memgpt.agent.Agent`` is built on it in layers, one job each: generation
(``_generate``), the context window and its budget (``_context``), editing the history (``_history``) and
the step loop (``agent``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from memgpt.agent._results import AgentEvent, Limits, TurnResult
from memgpt.agent.state import AgentState
from memgpt.contract.backend import Backend
from memgpt.contract.types import FunctionSchema, Message
from memgpt.contract.wrapper import Wrapper
from memgpt.functions.spec import FunctionSpec
from memgpt.memory.core import CoreMemory
from memgpt.storage.base import AgentRecord, Storage


class AgentBase:
    """The agent's components and state (set by ``Agent.__init__``), reporting and saving."""

    record: AgentRecord
    name: str
    storage: Storage
    backend: Backend
    wrapper: Wrapper
    system_prompt: str
    functions: dict[str, FunctionSpec]
    schemas: tuple[FunctionSchema, ...]
    context_window: int
    limits: Limits
    on_event: Callable[[AgentEvent], None] | None
    #: Told what the agent starts doing ("generating", "summarizing", "searching archival memory", …), for a
    #: front end's progress display; None: nobody listens.
    on_status: Callable[[str], None] | None
    core_memory: CoreMemory
    #: What the agent keeps between sessions (saved as ``record.settings`` with each step).
    state: AgentState
    #: The context window: the stored messages the prompt shows, oldest first.
    messages: list[Message]

    def _status(self, what: str) -> None:
        if self.on_status is not None:
            self.on_status(what)

    def _emit(self, result: TurnResult, event: AgentEvent) -> None:
        result.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def shown_memory(self) -> CoreMemory:
        """Core memory as the top of the prompt shows it: as of the last rewrite of the context (set when
        the agent is built, so always present)."""
        return CoreMemory.from_dict(self.state.core_memory_shown or {}, limit=self.core_memory.limit)

    def _show_current_memory(self) -> None:
        """Bring the prompt's core memory section up to date (saved with the next ``_save``)."""
        self.state.core_memory_shown = self.core_memory.to_dict()

    def _sync_record(self) -> None:
        """``record`` as the agent's state, memory and context window now are."""
        self.record.settings = self.state.dump()
        self.record.core_memory = self.core_memory.to_dict()
        self.record.in_context = [m.id for m in self.messages if m.id is not None]

    def _save(self) -> None:
        self._sync_record()
        self.record.updated_at = datetime.now(UTC)
        self.storage.save_agent(self.record)
