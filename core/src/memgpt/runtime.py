"""Turning a Config into live components: the backend, the wrapper, the grammar builder.

Every lookup goes through the plugin registry by name; nothing here knows a particular plugin.
"""

from __future__ import annotations

from memgpt.config import Config, load_api_key
from memgpt.llm.backend import Backend, BackendSettings
from memgpt.llm.wrapper import Wrapper, WrapperOptions
from memgpt.plugins import Registry, get_registry


def backend_settings(config: Config) -> BackendSettings:
    m = config.model
    return BackendSettings(
        endpoint=m.endpoint,
        model=m.model,
        api_key=load_api_key(m.backend),
        context_window=m.context_window,
        timeout=m.timeout,
        threads=m.threads,
    )


def open_backend(config: Config, registry: Registry | None = None) -> Backend:
    registry = registry or get_registry()
    spec = registry.backend(config.model.backend)
    return spec.factory(backend_settings(config))


def open_wrapper(name: str, backend: Backend | None = None, model_name: str | None = None, registry: Registry | None = None) -> Wrapper:
    """The wrapper called ``name``; the backend's chat template is offered to wrappers that adapt (``auto``)."""
    registry = registry or get_registry()
    spec = registry.wrapper(name)
    template = backend.chat_template() if backend is not None else None
    return spec.factory(WrapperOptions(model_name=model_name, chat_template=template))
