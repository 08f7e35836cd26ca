"""The data that crosses the plugin boundaries: messages, function schemas, constraints, completions.

pydantic models, frozen where they travel between components so that nothing one request sets can leak
into another (the original kept one mutable settings dict shared by every request).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant", "function"]
ConstraintKind = Literal["gbnf", "json_schema"]
FinishReason = Literal["stop", "length"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class FunctionCall(BaseModel):
    """One call the model asked for: ``{"function": name, "params": arguments}``.

    ``arguments`` include ``inner_thoughts`` (the model's monologue) and, where the function takes it,
    ``request_heartbeat``.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @property
    def inner_thoughts(self) -> str | None:
        value = self.arguments.get("inner_thoughts")
        return value if isinstance(value, str) else None


class Message(BaseModel):
    """One message of the agent's conversation, as stored in recall memory and replayed in prompts.

    - ``system``: the system prompt, alerts and summaries (``content``).
    - ``user``: an event JSON string (user message, login, heartbeat) in ``content``.
    - ``assistant``: the model's turn; ``function_call`` holds the call, ``content`` any text that came
      without a call (kept so a bad turn is never silently lost).
    - ``function``: the result of a call, ``name`` = the function, ``content`` = the result JSON string.
    """

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str | None = None
    function_call: FunctionCall | None = None
    name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    id: int | None = None


class FunctionSchema(BaseModel):
    """An OpenAI-style function description; ``parameters`` is a JSON schema of type ``object``."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.replace("_", "a").isalnum():
            raise ValueError(f"function name must be an identifier, got {value!r}")
        return value

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.parameters.get("properties", {}))

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


class CallShape(BaseModel):
    """How a wrapper lays out one call in JSON; grammars and parsers are built from it."""

    model_config = ConfigDict(frozen=True)

    function_key: str = "function"
    params_key: str = "params"
    inner_thoughts_key: str | None = "inner_thoughts"
    max_string_chars: int = Field(default=1200, ge=1)
    min_inner_thoughts_chars: int = Field(default=1, ge=0)  # the model thinks before every act
    #: A reasoning model's free-text thinking before the call: ``think_close`` ends it (empty: the model
    #: does not think); ``think_open`` starts it (empty while thinking is on: the prompt opened the block
    #: itself, so the block is not optional); at most ``max_think_chars`` characters of text in between.
    think_open: str = ""
    think_close: str = ""
    max_think_chars: int = Field(default=0, ge=0)

    @property
    def thinks(self) -> bool:
        return bool(self.think_close)


class Constraint(BaseModel):
    """What the output must match. A backend uses the kind it declares it can enforce."""

    model_config = ConfigDict(frozen=True)

    gbnf: str | None = None
    json_schema: dict[str, Any] | None = None

    def kinds(self) -> frozenset[ConstraintKind]:
        kinds: set[ConstraintKind] = set()
        if self.gbnf is not None:
            kinds.add("gbnf")
        if self.json_schema is not None:
            kinds.add("json_schema")
        return frozenset(kinds)

    def only(self, kind: ConstraintKind) -> Constraint:
        """This constraint in ``kind`` alone: what a backend that chose to enforce ``kind`` sends."""
        if kind == "gbnf" and self.gbnf is not None:
            return Constraint(gbnf=self.gbnf)
        if kind == "json_schema" and self.json_schema is not None:
            return Constraint(json_schema=self.json_schema)
        raise ValueError(f"the constraint has no {kind} (it has: {', '.join(sorted(self.kinds())) or 'nothing'})")


class SamplingParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None


class CompletionRequest(BaseModel):
    """One raw-prompt completion. Built fresh for every call, never mutated."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    stop: tuple[str, ...] = ()
    max_tokens: int = Field(default=512, ge=1)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    constraint: Constraint | None = None


class Usage(BaseModel):
    """Token counts as the backend measured them.

    ``cached_tokens`` are prompt tokens reused from the backend's KV cache; ``evaluated_tokens`` are the
    prompt tokens it actually had to process (``prompt_tokens - cached_tokens`` when the backend tells).
    ``None`` means the backend did not say: unknown, which is not 0.
    """

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = 0
    evaluated_tokens: int | None = None
    exact: bool = True


class Completion(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    constrained_by: ConstraintKind | None = None
    model: str | None = None
    seconds: float | None = None


class BackendStatus(BaseModel):
    """What ``Backend.check`` learned, and a one-line summary for the user."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    endpoint: str | None = None
    model: str | None = None
    context_window: int | None = None
    detail: str = ""

    def line(self) -> str:
        where = self.endpoint or "in process"
        if not self.ok:
            return f"✗ {where}: {self.detail}"
        ctx = f", context {self.context_window} tokens" if self.context_window else ""
        return f"✓ {where}: serving {self.model or 'an unnamed model'}{ctx}"
