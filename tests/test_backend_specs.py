"""Every installed backend declares its name, default endpoint and capabilities once: the class a spec's
factory opens takes them from that very spec, so what ``memgpt plugins`` and ``memgpt configure`` show (the
spec) is what the opened backend does."""

from __future__ import annotations

import inspect

import pytest

from memgpt.contract import Backend, BackendSettings
from memgpt.http import HTTPBackend
from memgpt.plugins import get_registry, is_builtin

SHIPPED = {"llamacpp", "llamacpp-embedded", "koboldcpp", "webui", "lmstudio", "vllm", "ollama", "openai"}


def test_the_backends_checked_here_are_the_ones_installed_with_memgpt() -> None:
    builtin = {name for name, spec in get_registry().backends.items() if is_builtin(spec.plugin)}
    assert builtin == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_opened_backend_takes_its_facts_from_the_registered_spec(name: str) -> None:
    spec = get_registry().backends[name]
    backend = spec.factory(BackendSettings())  # opening connects to nothing: servers are asked on first use
    try:
        cls = type(backend)
        assert isinstance(backend, Backend)
        assert cls.spec is not None, f"{cls.__qualname__} names no spec: its facts are declared a second time"
        assert (cls.spec.name, cls.spec.default_endpoint, cls.spec.capabilities) == (
            spec.name,
            spec.default_endpoint,
            spec.capabilities,
        )
        assert cls.name == backend.name == spec.name
        if not isinstance(inspect.getattr_static(cls, "capabilities"), property):  # openai reports what it probed
            assert cls.capabilities == backend.capabilities == spec.capabilities
        if isinstance(backend, HTTPBackend):
            assert spec.needs_endpoint
            assert backend.default_endpoint == backend.endpoint == spec.default_endpoint
        else:
            assert not spec.needs_endpoint and spec.default_endpoint is None
    finally:
        backend.close()
