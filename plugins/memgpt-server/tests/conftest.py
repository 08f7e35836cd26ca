"""Fixtures: a memgpt home on the scripted backend, and ``memgpt server`` running on it, in this process
(uvicorn in a thread, driven over real HTTP) or as a ``memgpt server`` process of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import scripted_server  # noqa: E402

SCRIPT = HERE / "scripted_server.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``MEMGPT_HOME`` with a config on the scripted backend and the letters embedder, both registered."""
    from memgpt import plugins

    folder = tmp_path / "home"
    folder.mkdir(mode=0o700)
    (folder / "config.toml").write_text(scripted_server.CONFIG, encoding="utf-8")
    monkeypatch.setenv("MEMGPT_HOME", str(folder))
    monkeypatch.delenv("MEMGPT_SERVER_API_KEY", raising=False)
    load = plugins._load_modules
    scripted_server.install()
    yield folder
    plugins._load_modules = load  # type: ignore[assignment]
    plugins.reset_registry()


class Running:
    def __init__(self, url: str, host: Any) -> None:
        self.url = url
        self.host = host

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)


@pytest.fixture
def serve(home: Path) -> Iterator[Callable[..., Running]]:
    """``serve(api_key=None, max_body=..., **host_options)``: the app under uvicorn on a free loopback port."""
    import uvicorn

    from memgpt_server.app import create_app
    from memgpt_server.host import Host

    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(api_key: str | None = None, max_body: int = 1 << 20, max_upload: int = 10 << 20, **options: Any) -> Running:
        host = Host(**options)
        port = free_port()
        config = uvicorn.Config(
            create_app(host, api_key=api_key, max_body=max_body, max_upload=max_upload),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        started.append((server, thread))
        return Running(f"http://127.0.0.1:{port}", host)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=30)


class Process:
    """``memgpt server`` (with the scripted backend) in a process of its own."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / f"server-{self.port}.log"
        self.handle = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "server", "--port", str(self.port), *args],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MEMGPT_HOME": str(home), **(env or {})},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memgpt server did not start: {self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        if not self.handle.closed:
            self.handle.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.handle.closed:
            self.handle.close()


@pytest.fixture
def server_process(home: Path) -> Iterator[Callable[..., Process]]:
    running: list[Process] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Process:
        process = Process(home, *args, env=env)
        running.append(process)
        return process

    yield start
    for process in running:
        process.stop()
