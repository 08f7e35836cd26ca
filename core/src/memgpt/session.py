"""Turning a Config into live components: the backend, the wrapper, the storage, and whole agents.

Every lookup goes through the plugin registry by name; nothing here knows a particular plugin.
"""

from __future__ import annotations

import contextlib
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memgpt.config import Config, ModelSettings, env_threads, home, load_api_key
from memgpt.contract.backend import Backend, BackendSettings
from memgpt.contract.wrapper import Wrapper, WrapperOptions
from memgpt.errors import BackendError, ConfigError, FunctionError, UnknownNameError
from memgpt.plugins import Registry, get_registry

#: Used when neither the config nor the backend can tell the context size.
FALLBACK_CONTEXT = 4096
#: The model settings an agent remembers, so ``--agent NAME`` resumes with what it was created with.
AGENT_MODEL_KEYS = ("backend", "endpoint", "model", "wrapper", "context_window", "max_tokens")


def backend_settings(model: ModelSettings) -> BackendSettings:
    threads = model.threads if model.threads is not None else env_threads()
    return BackendSettings(
        endpoint=model.endpoint,
        model=model.model,
        api_key=load_api_key(model.backend),
        context_window=model.context_window,
        timeout=model.timeout,
        threads=threads,
        options=dict(model.options),
    )


def open_backend(config: Config, registry: Registry | None = None) -> Backend:
    registry = registry or get_registry()
    spec = registry.backend(config.model.backend)
    return spec.factory(backend_settings(config.model))


def open_wrapper(
    name: str, backend: Backend | None = None, model_name: str | None = None, registry: Registry | None = None
) -> Wrapper:
    """The wrapper called ``name``; the backend's chat template is offered to wrappers that adapt (``auto``)."""
    registry = registry or get_registry()
    spec = registry.wrapper(name)
    template = backend.chat_template() if backend is not None else None
    return spec.factory(WrapperOptions(model_name=model_name, chat_template=template))


def open_storage(config: Config, registry: Registry | None = None) -> Any:
    from memgpt.config import load_storage_uri
    from memgpt.storage.spec import StorageOptions

    registry = registry or get_registry()
    options = StorageOptions(uri=load_storage_uri(config.storage))
    return registry.storage_engine(config.storage.engine).open(home(), options)


def agent_lock(storage: Any, name: str) -> Any:
    """The session lock of agent ``name``: the engine's own (``lock_agent``: one that spans machines) when it
    has one, else the file lock under the memgpt home."""
    from memgpt.locking import AgentLock

    lock_agent = getattr(storage, "lock_agent", None)
    return lock_agent(name) if callable(lock_agent) else AgentLock(home(), name)


@dataclass(frozen=True)
class Preset:
    """A system prompt and the functions an agent gets."""

    name: str
    system: str
    functions: tuple[str, ...]
    description: str = ""


def load_preset(name: str) -> Preset:
    from memgpt import catalog

    text = catalog.read("presets", name)
    try:
        data = tomllib.loads(text)
        return Preset(
            name=name,
            system=str(data["system"]).strip(),
            functions=tuple(data["functions"]),
            description=str(data.get("description", "")),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"preset {name!r} is malformed ({type(exc).__name__}: {exc}); it needs `system` and `functions`"
        ) from None


@dataclass
class AgentOptions:
    """What `memgpt run` was asked for; ``None`` = the agent's saved value, else the config's."""

    name: str | None = None
    persona: str | None = None
    human: str | None = None
    preset: str | None = None
    model: dict[str, Any] = field(default_factory=dict)  # overrides of AGENT_MODEL_KEYS
    heartbeat_minutes: float | None = None  # timed heartbeats for this session; None = off


def new_agent_name() -> str:
    return datetime.now().strftime("agent_%Y%m%d_%H%M%S")


@dataclass
class Session:
    """An open agent with the components it runs on; ``close()`` releases them."""

    agent: Any  # memgpt.agent.Agent
    backend: Backend
    storage: Any
    created: bool
    model: ModelSettings
    lock: Any = None  # memgpt.locking.AgentLock, held until close()

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            try:
                self.storage.close()
            finally:
                if self.lock is not None:
                    self.lock.release()


def open_session(config: Config, options: AgentOptions, *, on_event: Any = None, registry: Registry | None = None) -> Session:
    """Open (or create) the agent ``options.name`` with everything it needs.

    A new agent takes persona, human, preset and model settings from the options, then the config; a
    resumed one keeps what it was created with unless an option overrides it (the override is saved).
    """
    from memgpt import catalog
    from memgpt.agent.agent import Agent, Limits
    from memgpt.agent.state import AgentState
    from memgpt.memory.core import CoreMemory
    from memgpt.storage.base import AgentRecord

    registry = registry or get_registry()
    name = options.name or new_agent_name()
    # What is opened is closed again, in reverse, if anything later fails; on success the session owns it.
    with contextlib.ExitStack() as undo:
        storage = open_storage(config, registry)
        undo.callback(storage.close)
        lock = agent_lock(storage, name).acquire()  # before the agent is read: a second session fails here
        undo.callback(lock.release)
        record = storage.get_agent(name)
        created = record is None
        overrides = {k: v for k, v in options.model.items() if v is not None}
        if record is None:
            preset_name = options.preset or config.defaults.preset
            persona = options.persona or config.defaults.persona
            human = options.human or config.defaults.human
            core = CoreMemory.from_dict(
                {"persona": catalog.read("personas", persona).strip(), "human": catalog.read("humans", human).strip()}
            )
            load_preset(preset_name)  # fail before anything is written
            base = {k: getattr(config.model, k) for k in AGENT_MODEL_KEYS}
            state = AgentState(preset=preset_name, persona=persona, human=human, model={**base, **overrides})
            record = AgentRecord(name=name, settings=state.dump(), core_memory=core.to_dict())
        else:
            state = AgentState.load(record.settings)
            if options.preset and options.preset != state.preset:
                load_preset(options.preset)
                state.preset = options.preset
            state.model = {**state.model, **overrides}
            record.settings = state.dump()
        model = config.model.model_copy(update={k: v for k, v in state.model.items() if k in AGENT_MODEL_KEYS})
        model = ModelSettings.model_validate(model.model_dump())
        registry.backend(model.backend)  # unknown names fail here, listing the choices
        registry.wrapper(model.wrapper)
        preset = load_preset(state.preset or config.defaults.preset)
        functions = [registry.function(f) for f in preset.functions]
        backend = registry.backend(model.backend).factory(backend_settings(model))
        undo.callback(backend.close)
        wrapper = open_wrapper(model.wrapper, backend, model.model, registry)
        probed = backend.context_window() if backend.capabilities.context_probe else None
        window = min(w for w in (model.context_window, probed) if w) if (model.context_window or probed) else FALLBACK_CONTEXT
        grammar = registry.grammar("call")
        embedding = config.embedding

        def embedder() -> Any:
            try:
                spec = registry.embedder(embedding.provider)
            except UnknownNameError as exc:
                raise FunctionError(f"archival memory is unavailable: {exc}") from None
            return spec.factory(embedding.model)

        agent = Agent(
            record,
            storage=storage,
            backend=backend,
            wrapper=wrapper,
            system_prompt=preset.system,
            functions=functions,
            build_constraint=grammar.build,
            embedder=embedder,
            context_window=window,
            limits=Limits(
                max_tokens=model.max_tokens, temperature=model.temperature, heartbeat_minutes=options.heartbeat_minutes
            ),
            on_event=on_event,
        )
        try:
            # A window too small for any conversation is refused before anything is saved.
            agent.check_window()
        except BackendError:
            pass  # the backend cannot count now (a server that is down): each turn reports that itself
        if created or overrides or options.preset:
            storage.save_agent(record)
        undo.pop_all()
    return Session(agent=agent, backend=backend, storage=storage, created=created, model=model, lock=lock)
