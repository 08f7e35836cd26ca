"""What every dialect test server shares: strict request bodies, fault-aware generation, a uvicorn runner.

Each dialect module (``koboldcpp``, ``webui``, ``lmstudio``, ``vllm``) builds a FastAPI app that speaks one
real server's documented HTTP API and returns a ``Dialect``; ``DialectServer`` wraps it in the fault switch
(``faults.py``) and serves it from a background thread on 127.0.0.1, on a port of the OS's choosing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from .engine import Engine, Generation, Sampling
from .faults import Fault, FaultSwitch, RecordedRequest


class StrictBody(BaseModel):
    """A request body that rejects unknown (e.g. misspelled) fields, so a client's wrong field name fails."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Dialect:
    """A built dialect app plus what the fault switch needs to know about it.

    - ``generation_paths``: where an armed fault fires by default.
    - ``error_body(status, message)``: the body this server sends with an error status.
    - ``unauthorized(path)``: (status, body) this server answers a request without the right API key, or
      None where it leaves ``path`` open. Only checked when ``api_key`` is set.
    """

    name: str
    app: FastAPI
    generation_paths: tuple[str, ...]
    error_body: Callable[[int, str], Any]
    unauthorized: Callable[[str], tuple[int, Any] | None]
    api_key: str | None = None


async def generate(
    engine: Engine,
    request: Request,
    prompt: str | Sequence[int],
    *,
    max_tokens: int,
    stop: Sequence[str] = (),
    stop_tokens: Sequence[int] = (),
    gbnf: str | None = None,
    sampling: Sampling | None = None,
) -> Generation:
    """Generate off the event loop, applying a generation fault armed for this request."""
    fault: Fault | None = request.scope.get("dialect_fault")
    if fault is not None and fault.kind in ("empty", "replace_text"):
        prompt_tokens = len(engine.tokenize(prompt)) if isinstance(prompt, str) else len(prompt)
        text = fault.text if fault.kind == "replace_text" else ""
        completion = len(engine.tokenize(text, add_special=False)) if text else 0
        return Generation(text=text, raw_text=text, finish="stop", prompt_tokens=prompt_tokens, completion_tokens=completion)
    if fault is not None and fault.kind == "ignore_constraint":
        gbnf = None
    return await run_in_threadpool(
        engine.generate, prompt, max_tokens=max_tokens, stop=stop, stop_tokens=stop_tokens, gbnf=gbnf, sampling=sampling
    )


def unsupported(body: BaseModel, defaults: dict[str, Any]) -> str | None:
    """The first field set to something this test server accepts but does not implement, if any."""
    for name, default in defaults.items():
        value = getattr(body, name)
        if value != default and value is not None:
            return f"`{name}` is accepted by the real server but not implemented by this test server"
    return None


def validation_message(errors: Sequence[Any]) -> str:
    """One line from pydantic's errors: ``loc: msg`` for each, e.g. ``body.max_tokn: Extra inputs ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors)


class DialectServer:
    """A dialect app served by uvicorn in a background thread, with its fault switch and request log."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self.name = dialect.name
        self.switch = FaultSwitch(
            dialect.app,
            generation_paths=dialect.generation_paths,
            error_body=dialect.error_body,
            unauthorized=dialect.unauthorized,
            api_key=dialect.api_key,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DialectServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # the OS picks a free port; binding first means no race for it
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.switch, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"dialect-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} test server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    # -- faults and the request log -----------------------------------------------------------------------
    def inject(self, kind: str, *, times: int = 1, path: str | None = None, seconds: float = 5.0, text: str = "") -> None:
        """Arm a fault for the next ``times`` generation requests (or requests to ``path``; ``"*"``: any)."""
        self.switch.inject(Fault(kind=kind, times=times, path=path, seconds=seconds, text=text))

    def reset(self) -> None:
        """Disarm every fault and forget the recorded requests."""
        self.switch.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.switch.recorded()

    def last_request(self, path: str | None = None) -> RecordedRequest:
        for recorded in reversed(self.switch.recorded()):
            if path is None or recorded.path == path:
                return recorded
        raise LookupError(f"the {self.name} test server received no request" + (f" for {path}" if path else ""))
