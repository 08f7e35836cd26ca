"""Every way to extend memgpt. A plugin is a module with ``@memgpt.hookimpl`` functions named like these,
listed under the entry-point group ``memgpt``.

Each ``register_*`` hook is called once per process, the first time something asks for the registry
(``memgpt.plugins.get_registry()``), never at import. It receives a ``register`` callback and calls it
once per thing it provides. Registration must be cheap: no I/O, no network, no heavy imports (those go
in the factories, which run only when the thing is used). A name another plugin registered first is
refused and reported against the later plugin.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("memgpt")


@hookspec
def register_backends(register: Any) -> None:
    """Register model backends: ``register(BackendSpec(name, factory, ...))``.

    ``factory(BackendSettings) -> Backend`` is called when an agent starts or ``configure`` checks it. The
    spec declares the backend's name, default endpoint and capabilities; the class the factory opens names it
    (``spec = THE_SPEC``) and takes them from it."""


@hookspec
def register_wrappers(register: Any) -> None:
    """Register prompt wrappers: ``register(WrapperSpec(name, factory, ...))``.

    ``factory(WrapperOptions) -> Wrapper`` is called when an agent starts."""


@hookspec
def register_grammars(register: Any) -> None:
    """Register grammar builders: ``register(GrammarSpec(name, build))``.

    ``build(functions, call_shape) -> Constraint`` is called when an agent's function set changes."""


@hookspec
def register_storage(register: Any) -> None:
    """Register storage engines: ``register(StorageSpec(name, factory))``.

    ``factory(home: Path) -> Storage`` (or ``factory(home, options: StorageOptions)`` for an engine that
    needs ``options.uri``) is called when the CLI opens the agent database."""


@hookspec
def register_embedders(register: Any) -> None:
    """Register embedding providers: ``register(EmbedderSpec(name, factory))``.

    ``factory(model_name_or_none) -> Embedder`` is called the first time archival memory is used."""


@hookspec
def register_functions(register: Any) -> None:
    """Register functions an agent can call: ``register(FunctionSpec(name, schema, handler))``.

    Presets name the functions they give the agent; handlers run inside the agent's step."""


@hookspec(firstresult=True)
def wrapper_for_model(model_name: str | None, chat_template: str | None) -> str | None:
    """Name the wrapper that fits a model, from its name or its Jinja chat template; ``None`` = no idea.

    Called by the ``auto`` wrapper when an agent starts; the first plugin that answers wins."""


@hookspec
def register_commands(register: Any) -> None:
    """Register CLI sub-commands: ``register(CommandSpec(name, callback, help))`` (``memgpt.cli.spec``).

    ``callback`` is a typer command function, attached as ``memgpt NAME`` when the CLI starts; its module
    must import nothing heavy (the server framework goes inside the function). A built-in command's name is
    refused."""
