"""pytest fixtures that start the dialect test servers (koboldcpp, webui, LM Studio, vLLM, Ollama) once per session.

Every server generates with the session's one in-process SmolLM2 (the root ``llama`` fixture) through one
``Engine``, whose lock serialises requests. Servers start lazily, the first time a test asks for one, on
127.0.0.1 and a free port, in a background thread; they stop at the end of the session.

Use them from any test directory by importing the fixtures into that directory's ``conftest.py``::

    from tests.dialects.fixtures import dialect_server, dialect_servers, dead_endpoint  # noqa: F401

(``tests`` is importable when pytest runs as ``python -m pytest`` from the repository root, as ``make test``
does; a bare ``pytest`` needs ``pythonpath = ["."]`` in the pytest settings), then::

    def test_generate(dialect_server):
        server = dialect_server("koboldcpp")            # or dialect_server("vllm", api_key="s3cret")
        httpx.post(server.url + "/api/v1/generate", json={...})
        server.inject("http_500")                       # the next generation request gets a 500
        server.last_request("/api/v1/generate").json    # the exact body the server received

Faults and the request log are reset before and after each test that uses ``dialect_server``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import DIALECTS, build
from .engine import Engine
from .server import DialectServer

_lock = threading.Lock()
_registries: dict[int, DialectServers] = {}


class DialectServers:
    """The running dialect servers of a session, one per (dialect, options), sharing one ``Engine``."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._servers: dict[tuple[str, tuple[tuple[str, Any], ...]], DialectServer] = {}

    def get(self, name: str, **options: Any) -> DialectServer:
        """The server for dialect ``name`` built with ``options`` (``api_key``, ``model_name``, ...), started
        the first time it is asked for."""
        if name not in DIALECTS:
            raise KeyError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}")
        key = (name, tuple(sorted(options.items())))
        with _lock:
            server = self._servers.get(key)
            if server is None:
                server = DialectServer(build(name, self.engine, **options)).start()
                self._servers[key] = server
        return server

    def stop_all(self) -> None:
        with _lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop()


def registry_for(llama: Any) -> DialectServers:
    """One registry per loaded model, shared by every conftest that imports these fixtures."""
    with _lock:
        registry = _registries.get(id(llama))
        if registry is None:
            registry = _registries[id(llama)] = DialectServers(Engine(llama))
        return registry


@pytest.fixture(scope="session")
def dialect_servers(llama: Any) -> Iterator[DialectServers]:
    """Every dialect test server of the session (started lazily); ``.get(name, **options)``."""
    registry = registry_for(llama)
    yield registry
    registry.stop_all()


@pytest.fixture
def dialect_server(dialect_servers: DialectServers) -> Iterator[Callable[..., DialectServer]]:
    """``dialect_server(name, **options) -> DialectServer``, with faults and the request log reset."""
    used: list[DialectServer] = []

    def get(name: str, **options: Any) -> DialectServer:
        server = dialect_servers.get(name, **options)
        server.reset()
        used.append(server)
        return server

    yield get
    for server in used:
        server.reset()


@pytest.fixture
def koboldcpp_server(dialect_server: Callable[..., DialectServer]) -> DialectServer:
    return dialect_server("koboldcpp")


@pytest.fixture
def webui_server(dialect_server: Callable[..., DialectServer]) -> DialectServer:
    return dialect_server("webui")


@pytest.fixture
def lmstudio_server(dialect_server: Callable[..., DialectServer]) -> DialectServer:
    return dialect_server("lmstudio")


@pytest.fixture
def vllm_server(dialect_server: Callable[..., DialectServer]) -> DialectServer:
    return dialect_server("vllm")


@pytest.fixture
def ollama_server(dialect_server: Callable[..., DialectServer]) -> DialectServer:
    return dialect_server("ollama")


@pytest.fixture
def dead_endpoint() -> str:
    """A 127.0.0.1 URL nothing listens on (connection refused): the "server down" case."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
