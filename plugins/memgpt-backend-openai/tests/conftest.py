"""Fixtures of the openai plugin's tests: three real OpenAI-compatible servers, each in its own process.

- ``llama_server_v1``: the native llama-server (``make server``) serving SmolLM2, talked to through ``/v1``;
- ``llama_cpp_python_server``: llama-cpp-python's own server (``python -m llama_cpp.server``, which needs the
  ``[server]`` extras listed in this plugin's ``test`` extra) serving the same GGUF;
- ``real_vllm``: the real vLLM of ``scripts/setup-vllm.sh``, the session's one (the repository's root
  ``conftest.py``, shared with the vLLM plugin's tests); without that setup its tests are skipped, unless
  ``MEMGPT_REQUIRE_VLLM=1`` (``make test``, CI) makes a missing setup a failure.

Each binds 127.0.0.1 on a free port, runs one thread, logs to a file whose tail is shown if it fails to come
up, and is stopped (its whole process group) when its scope ends. What a backend learned about a server is
kept for the process (``SERVERS``), as in a real session: each server is probed once for all its tests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RealServer, free_port, serve

CONTEXT = 4096
#: llama-cpp-python's `[server]` extras (the plugin's `test` extra); llama-cpp-python itself is installed.
SERVER_EXTRAS = ("sse_starlette", "starlette_context", "pydantic_settings", "yaml")


@pytest.fixture(scope="session")
def llama_server_v1(
    llama_server_binary: Path, smollm2: Path, threads: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealServer]:
    """The native llama-server serving SmolLM2 (context 4096, one slot); the tests use its ``/v1``."""
    port = free_port()
    command = [
        str(llama_server_binary), "-m", str(smollm2), "--host", "127.0.0.1", "--port", str(port),
        "-t", str(threads), "-tb", str(threads), "-c", str(CONTEXT), "-np", "1", "--no-webui",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("llama-server-v1") / "server.log"
    yield from serve("llama-server", command, port=port, model=str(smollm2), ready_path="/health", log=log, seconds=120)


@pytest.fixture(scope="session")
def llama_cpp_python_server(smollm2: Path, threads: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) serving SmolLM2 as ``smollm2``."""
    missing = [m for m in SERVER_EXTRAS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"llama-cpp-python's server extras are missing ({', '.join(missing)}): "
            "pip install -e 'plugins/memgpt-backend-openai[test]' (or `make install`)"
        )
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT),
        "--n_threads", str(threads), "--n_threads_batch", str(threads), "--verbose", "False",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("llama-cpp-python") / "server.log"
    yield from serve(
        "llama-cpp-python server", command, port=port, model="smollm2", ready_path="/v1/models", log=log, seconds=120
    )
