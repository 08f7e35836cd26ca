"""The Backend contract: something that completes a raw prompt, optionally under a constraint."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, ConstraintKind


class Capabilities(BaseModel):
    """What a backend can do. Core chooses constraint kinds and token counting from this, never by name.

    - ``constraints``: constraint kinds the backend enforces, in order of preference.
    - ``tokenizer``: ``count_tokens`` is exact (the backend's own tokenizer), not an estimate.
    - ``context_probe``: ``check`` / ``context_window`` can learn the real context size.
    - ``prefix_cache``: the backend reuses the KV cache of a shared prompt prefix between calls.
    """

    model_config = ConfigDict(frozen=True)

    constraints: tuple[ConstraintKind, ...] = ()
    tokenizer: bool = False
    context_probe: bool = False
    prefix_cache: bool = False


class BackendSettings(BaseModel):
    """Everything a backend factory receives, from config and command-line overrides."""

    model_config = ConfigDict(frozen=True)

    endpoint: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    context_window: int | None = Field(default=None, ge=256)
    timeout: float | None = Field(default=None, gt=0)  # a fixed limit per request; None: each request's own deadlines
    retries: int = Field(default=2, ge=0)
    threads: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)


class Backend(abc.ABC):
    """A model server (or in-process model) that completes raw prompts.

    Implementations raise the ``BackendError`` subclasses from ``memgpt.errors`` and nothing else.

    A class that implements a registered backend names its registration in ``spec``; its ``name`` and
    ``capabilities`` (and an ``HTTPBackend``'s ``default_endpoint``) are then the spec's, declared once there.
    Declaring one of them in the class as well is a ``TypeError``; a *property* may still override
    ``capabilities`` with what the backend finds out at run time (the ``openai`` plugin probes its server).
    """

    #: The registration this class implements; ``None`` for a backend no plugin registers (a test's fake).
    spec: ClassVar[BackendSpec | None] = None
    #: The attributes a class takes from its ``spec``.
    from_spec: ClassVar[tuple[str, ...]] = ("name", "capabilities")

    name: str = ""
    capabilities: Capabilities = Capabilities()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        own = vars(cls)
        twice = [attr for attr in cls.from_spec if attr in own and not isinstance(own[attr], property)]
        if twice:
            raise TypeError(
                f"{cls.__qualname__} declares {', '.join(twice)} and takes its spec's ({spec.name!r}): declare each "
                "once, in the spec"
            )
        for attr in cls.from_spec:
            value = getattr(spec, attr)
            if attr not in own and value is not None:
                setattr(cls, attr, value)

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """Complete ``request.prompt``; honour ``stop``, ``max_tokens`` and, where declared, the constraint."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes; exact when ``capabilities.tokenizer`` is true, else an estimate."""

    @abc.abstractmethod
    def check(self) -> BackendStatus:
        """Probe the backend: is it up, which model, what context size. Never raises for a down server."""

    def context_window(self) -> int | None:
        """The context size the backend actually runs with, if it can tell."""
        return self.check().context_window

    def chat_template(self) -> str | None:
        """The model's own chat template (Jinja), if the backend can read it; used by the ``auto`` wrapper."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections or memory. Called once when the agent stops."""


@dataclass(frozen=True)
class BackendSpec:
    """What ``register_backends`` registers: a name, a factory, and what the user is shown.

    The spec is where a backend's ``name``, ``default_endpoint`` and ``capabilities`` are declared; the class it
    opens says ``spec = THE_SPEC`` and takes them from it (``Backend``). The registration module keeps the spec
    and a factory that imports the class when the backend is opened, so listing plugins stays cheap.

    ``verified`` says what the backend was verified against, in a few words (``"real server"``,
    ``"documentation only (dialect test server)"``); ``memgpt plugins`` shows it. ``None``: the plugin does
    not say, shown as ``NOT_STATED``.
    """

    name: str
    factory: Callable[[BackendSettings], Backend]
    description: str = ""
    default_endpoint: str | None = None
    needs_endpoint: bool = True
    capabilities: Capabilities = field(default_factory=Capabilities)
    plugin: str = ""
    verified: str | None = None

    @property
    def verified_against(self) -> str:
        """``verified``, or ``NOT_STATED`` when the plugin does not say."""
        return self.verified.strip() if self.verified and self.verified.strip() else NOT_STATED


#: What ``memgpt plugins`` shows for a backend whose plugin does not say what it was verified against.
NOT_STATED = "unknown (not stated)"
