"""The agent's saved state: one pydantic model, ``AgentState``, read and written through it.

It is stored as the JSON object ``AgentRecord.settings`` (the storage engines keep it as they always have):
``dump`` writes only what is set, under the keys earlier versions wrote, so an agent saved by one version
opens in the other. A key this version does not know (one a newer memgpt wrote) is kept as it is; a known
key whose value is unreadable is dropped with a warning instead of making the agent impossible to open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("memgpt.agent")


class AgentState(BaseModel):
    """What an agent keeps between sessions besides its memory and messages."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    #: How it was created: the preset (system prompt and functions) and the persona and human it started from.
    preset: str | None = None
    persona: str | None = None
    human: str | None = None
    #: The agent's own model settings (``memgpt.session.AGENT_MODEL_KEYS``), over the config's.
    model: dict[str, Any] = Field(default_factory=dict)
    #: The user's message that was accepted but never answered (the step failed or the process died) …
    pending_message: str | None = None
    #: … and the unanswered messages sent before it, oldest first.
    pending_earlier: list[str] = Field(default_factory=list)
    #: Timed heartbeats are paused until then (``time.time()``), by ``pause_heartbeats``.
    heartbeats_paused_until: float | None = None
    #: Core memory as rendered at the top of the prompt (brought up to date when the context is rewritten).
    core_memory_shown: dict[str, str] | None = None
    #: When the user last opened a session with the agent, as the login event shows it.
    last_login: str | None = None

    @classmethod
    def load(cls, settings: Mapping[str, Any]) -> AgentState:
        """The state stored as ``settings``; a known key with an unreadable value is dropped (and logged)."""
        data = dict(settings)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            log.warning("agent state: ignoring unreadable %s", ", ".join(sorted(bad)))
            return cls.model_validate({key: value for key, value in data.items() if key not in bad})

    def dump(self) -> dict[str, Any]:
        """The JSON object to store: the keys that are set, and any this version does not know."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @property
    def pending_messages(self) -> list[str]:
        """Every unanswered user message, oldest first."""
        last = [self.pending_message] if self.pending_message is not None else []
        return [*self.pending_earlier, *last]

    def set_pending(self, text: str, *, earlier: list[str]) -> None:
        self.pending_message, self.pending_earlier = text, list(earlier)

    def clear_pending(self) -> None:
        self.pending_message, self.pending_earlier = None, []
