"""Fixtures of the llamacpp plugin's tests: one real native llama-server per test session.

The server runs the SmolLM2 GGUF on 127.0.0.1 with one thread and one slot (so consecutive requests share
the slot's KV cache, which the prefix-cache test relies on); its console goes to a log file whose tail is
shown if it fails to come up.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class RunningServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(
    llama_server_binary: Path, smollm2: Path, threads: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A native llama-server serving SmolLM2 (context 4096, one slot), waited on through ``/health``."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        str(llama_server_binary),
        "-m", str(smollm2),
        "--host", "127.0.0.1",
        "--port", str(port),
        "-t", str(threads),
        "-tb", str(threads),
        "-c", "4096",
        "-np", "1",
        "--no-webui",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield RunningServer(url=url, log=log, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama-server at {url} not healthy after {STARTUP_SECONDS:g}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
