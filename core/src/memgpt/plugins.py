"""Plugin discovery: stevedore finds and imports the entry points of group ``memgpt``, one pluggy
``PluginManager`` holds them, and their ``register_*`` hooks fill one ``Registry``.

Nothing here runs at import. ``get_registry()`` does the work once per process (cached) and is what the
CLI and the agent call. A plugin that fails to import, has a misspelled hook, raises inside a hook or
registers a name another plugin already took is recorded as a ``PluginFailure`` and the others keep
working; ``memgpt plugins`` shows the failures. The plugins shipped with memgpt (``BUILTIN``) register
first, so a third-party plugin can never take over a built-in name (the clash is reported). A factory
that raises something other than a ``MemGPTError`` is turned into a ``PluginError`` naming the plugin.

Environment:
- ``MEMGPT_LOAD_PLUGINS``: unset = load every plugin; empty = none; ``a,b`` = only those entry points.
- ``MEMGPT_DISABLE_PLUGINS``: ``a,b`` = never load these entry points.
- ``MEMGPT_TRACE_PLUGINS=1``: print every hook call and registration to stderr.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from memgpt import hookspecs
from memgpt.errors import MemGPTError, PluginError, UnknownNameError

log = logging.getLogger("memgpt.plugins")

if TYPE_CHECKING:
    from memgpt.cli.spec import CommandSpec
    from memgpt.contract.backend import BackendSpec
    from memgpt.contract.wrapper import WrapperSpec
    from memgpt.embeddings.spec import EmbedderSpec
    from memgpt.functions.spec import FunctionSpec
    from memgpt.grammar.spec import GrammarSpec
    from memgpt.storage.spec import StorageSpec

GROUP = "memgpt"

#: entry-point name -> distribution of the plugins shipped with memgpt; they register before any other.
BUILTIN: dict[str, str] = {
    "core": "memgpt",
    "koboldcpp": "memgpt-backend-koboldcpp",
    "llamacpp": "memgpt-backend-llamacpp",
    "lmstudio": "memgpt-backend-lmstudio",
    "ollama": "memgpt-backend-ollama",
    "openai": "memgpt-backend-openai",
    "postgres": "memgpt-storage-postgres",
    "server": "memgpt-server",
    "vllm": "memgpt-backend-vllm",
    "webui": "memgpt-backend-webui",
    "wrappers-builtin": "memgpt-wrappers-builtin",
}
#: core's own registrations (storage, grammar builder, embedder, memory functions): always loaded
CORE = "core"

#: hook name -> the kind of thing it registers (the Registry attribute and the word users see)
KINDS: dict[str, str] = {
    "register_backends": "backends",
    "register_wrappers": "wrappers",
    "register_grammars": "grammars",
    "register_storage": "storage",
    "register_embedders": "embedders",
    "register_functions": "functions",
    "register_commands": "commands",
}


@dataclass
class PluginFailure:
    """Why a plugin (or one thing it registered) is not available."""

    plugin: str
    distribution: str | None
    stage: str  # "import", "validate", "register_backends", ...
    error: str
    detail: str = ""

    def line(self) -> str:
        dist = f" ({self.distribution})" if self.distribution else ""
        return f"{self.plugin}{dist}: {self.stage} failed: {self.error}"


@dataclass
class PluginInfo:
    """One loaded plugin and what it registered, by kind."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Registry:
    """Everything the installed plugins registered, by kind and name."""

    backends: dict[str, BackendSpec] = field(default_factory=dict)
    wrappers: dict[str, WrapperSpec] = field(default_factory=dict)
    grammars: dict[str, GrammarSpec] = field(default_factory=dict)
    storage: dict[str, StorageSpec] = field(default_factory=dict)
    embedders: dict[str, EmbedderSpec] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    def canonical(self, kind: str, name: str) -> str:
        """``name`` as registered in ``kind`` when it matches one name ignoring case; else ``name`` itself."""
        table: dict[str, Any] = getattr(self, kind)
        if name in table:
            return name
        matches = [n for n in table if n.casefold() == name.casefold()]
        return matches[0] if len(matches) == 1 else name

    def get(self, kind: str, name: str) -> Any:
        """The spec registered as ``name`` in ``kind`` (case-insensitively), or ``UnknownNameError`` listing
        the choices."""
        table: dict[str, Any] = getattr(self, kind)
        try:
            return table[self.canonical(kind, name)]
        except KeyError:
            raise UnknownNameError(kind.rstrip("s") if kind != "storage" else kind, name, list(table)) from None

    def suggest_wrapper(self, model_name: str | None, chat_template: str | None) -> str | None:
        """The wrapper the plugins' ``wrapper_for_model`` hooks suggest for a model (the first answer wins), if
        it is a registered wrapper other than ``auto``; ``None`` otherwise. A hook that raises is logged and
        skipped, like every other plugin failure."""
        if self.manager is None:
            return None
        for impl in reversed(self.manager.hook.wrapper_for_model.get_hookimpls()):  # pluggy's calling order
            try:
                name = impl.function(model_name=model_name, chat_template=chat_template)
            except Exception as exc:  # a plugin's bug must not stop an agent from starting
                log.warning("plugin %s: wrapper_for_model raised %s: %s; ignoring it", impl.plugin_name, type(exc).__name__, exc)
                continue
            if not name:
                continue
            if name != "auto" and name in self.wrappers:
                return str(name)
            log.warning("plugin %s suggested wrapper %r, which is not a registered wrapper; ignoring it", impl.plugin_name, name)
        return None

    def backend(self, name: str) -> BackendSpec:
        spec: BackendSpec = self.get("backends", name)
        return spec

    def wrapper(self, name: str) -> WrapperSpec:
        spec: WrapperSpec = self.get("wrappers", name)
        return spec

    def grammar(self, name: str) -> GrammarSpec:
        spec: GrammarSpec = self.get("grammars", name)
        return spec

    def storage_engine(self, name: str) -> StorageSpec:
        spec: StorageSpec = self.get("storage", name)
        return spec

    def embedder(self, name: str) -> EmbedderSpec:
        spec: EmbedderSpec = self.get("embedders", name)
        return spec

    def function(self, name: str) -> FunctionSpec:
        spec: FunctionSpec = self.get("functions", name)
        return spec


def _env_names(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _trace(message: str) -> None:
    if os.environ.get("MEMGPT_TRACE_PLUGINS"):
        print(f"[memgpt plugins] {message}", file=sys.stderr)


@functools.cache
def _distributions() -> dict[str, tuple[str, str]]:
    """entry-point name -> (distribution, version). Read from package metadata only when needed."""
    from importlib.metadata import entry_points

    found: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None and ep.name not in found:
            found[ep.name] = (dist.metadata["Name"], dist.version)
    return found


def distribution_of(plugin: str) -> tuple[str | None, str | None]:
    return _distributions().get(plugin, (None, None))


def is_builtin(plugin: str) -> bool:
    """Whether ``plugin`` is one shipped with memgpt (by entry-point name *and* distribution, so a
    third-party package cannot pass for one by reusing a name)."""
    return plugin in BUILTIN and distribution_of(plugin)[0] in (BUILTIN[plugin], None)


def _load_order(name: str) -> tuple[bool, str]:
    return (not is_builtin(name), name)


def _select(all_names: Iterable[str]) -> list[str]:
    """The entry points to load. Core's own (``core``: storage, grammar builder, embedder, memory functions) is
    always among them: without it no agent could run, whatever the environment says."""
    allowed = _env_names("MEMGPT_LOAD_PLUGINS")
    denied = set(_env_names("MEMGPT_DISABLE_PLUGINS") or []) - {CORE}
    names = sorted(set(all_names), key=_load_order)
    if allowed is not None:
        names = [n for n in names if n in allowed or n == CORE]
    return [n for n in names if n not in denied]


def _load_modules(failures: list[PluginFailure]) -> list[tuple[str, Any]]:
    """Import the selected entry points with stevedore; record import failures, never raise."""
    from stevedore import NamedExtensionManager

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        dist, _ = distribution_of(entry_point.name)
        failures.append(
            PluginFailure(
                plugin=entry_point.name,
                distribution=dist,
                stage="import",
                error=f"{type(exc).__name__}: {exc}",
                detail="".join(traceback.format_exception(exc)),
            )
        )

    probe: NamedExtensionManager[Any] = NamedExtensionManager(GROUP, names=[], on_missing_entrypoints_callback=lambda _: None)
    names = _select(probe.entry_points_names())
    if not names:
        return []
    manager = NamedExtensionManager(
        GROUP,
        names=names,
        name_order=True,
        on_load_failure_callback=on_failure,
        on_missing_entrypoints_callback=lambda _: None,
    )
    return [(ext.name, ext.plugin) for ext in manager]


def build_registry(modules: Iterable[tuple[str, Any]] | None = None) -> Registry:
    """Discover (or take ``modules`` as ``(name, module)`` pairs) and collect every registration."""
    registry = Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    registry.manager = pm
    if os.environ.get("MEMGPT_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda text: print(f"[memgpt plugins] {text}", end="", file=sys.stderr))
        pm.enable_tracing()

    loaded = (
        sorted(modules, key=lambda pair: not is_builtin(pair[0])) if modules is not None else _load_modules(registry.failures)
    )
    for name, module in loaded:
        dist, version = distribution_of(name)
        try:
            pm.register(module, name=name)
            pm.check_pending()
        except Exception as exc:  # a misspelled hook, a bad signature, a duplicate name
            if pm.is_registered(module):
                pm.unregister(module)
            registry.failures.append(PluginFailure(name, dist, "validate", f"{type(exc).__name__}: {exc}"))
            continue
        hooks = sorted(  # by the spec each implements (a hookimpl may be named otherwise: ``specname=``)
            caller.name for caller in pm.get_hookcallers(module) or [] for impl in caller.get_hookimpls() if impl.plugin is module
        )
        registry.plugins.append(
            PluginInfo(
                name=name, module=getattr(module, "__name__", str(module)), distribution=dist, version=version, hooks=hooks
            )
        )

    for info in registry.plugins:
        module = pm.get_plugin(info.name)
        for hook_name, kind in KINDS.items():
            # pluggy's own record of the implementations, whatever their Python names
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin is module:
                    _call_register_hook(registry, info, hook_name, kind, impl.function)
    return registry


def _call_register_hook(registry: Registry, info: PluginInfo, hook_name: str, kind: str, impl: Callable[..., Any]) -> None:
    table: dict[str, Any] = getattr(registry, kind)
    names = info.registered.setdefault(kind, [])
    staged: dict[str, Any] = {}

    def register(spec: Any) -> None:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{hook_name} registered {spec!r}, which has no name")
        if name in table or name in staged:
            owner = getattr(table.get(name), "plugin", None) or info.name
            why = (
                f"{kind} name {name!r} belongs to the built-in plugin {owner!r}, which wins"
                if owner != info.name and is_builtin(owner)
                else f"{kind} name {name!r} is already registered by plugin {owner!r}; kept the first"
            )
            registry.failures.append(PluginFailure(info.name, info.distribution, hook_name, why))
            return
        updates: dict[str, Any] = {}
        if hasattr(spec, "plugin") and not spec.plugin:
            updates["plugin"] = info.name
        if callable(getattr(spec, "factory", None)):
            updates["factory"] = _guarded(spec.factory, kind, name, info.name)
        staged[name] = _with(spec, updates)
        _trace(f"{info.name}: {kind} {name!r}")

    try:
        impl(register=register)
    except Exception as exc:
        # All or nothing per hook: a hook that raises half way registers none of its things.
        registry.failures.append(
            PluginFailure(
                info.name, info.distribution, hook_name, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
            )
        )
        return
    table.update(staged)
    names.extend(staged)


def _with(spec: Any, updates: dict[str, Any]) -> Any:
    """A copy of ``spec`` with ``updates``: the registry never writes into the spec a plugin registered, which
    is often a module-level constant its backend class also names (a second registry, or a test building
    one, must see it as the plugin declared it)."""
    if not updates:
        return spec
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.replace(spec, **updates)
    clone = copy.copy(spec)
    for key, value in updates.items():
        object.__setattr__(clone, key, value)
    return clone


def _guarded(factory: Callable[..., Any], kind: str, name: str, plugin: str) -> Callable[..., Any]:
    """``factory``, with any exception that is not a MemGPTError turned into a one-line PluginError."""
    if getattr(factory, "__memgpt_guarded__", False):
        return factory

    @functools.wraps(factory)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return factory(*args, **kwargs)
        except MemGPTError:
            raise
        except Exception as exc:
            what = kind[:-1] if kind.endswith("s") else kind
            raise PluginError(
                f"{what} {name!r} (plugin {plugin!r}) failed to start: {type(exc).__name__}: {exc} — "
                "see `memgpt plugins`, or choose another with `memgpt configure`"
            ) from exc

    guarded.__memgpt_guarded__ = True  # type: ignore[attr-defined]
    return guarded


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry()


def reset_registry() -> None:
    """Forget the cached registry (tests, and after installing a plugin in the same process)."""
    get_registry.cache_clear()
    _distributions.cache_clear()
