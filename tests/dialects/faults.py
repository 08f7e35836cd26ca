"""The fault switch and request log that wrap every dialect test server (an ASGI middleware).

Fault tests need a server that misbehaves on demand: answers 500 or 503, is too slow, sends a JSON body cut
in half, drops the connection mid-body, returns empty text, ignores the constraint, or returns text of the
test's choosing. Arm a fault with ``DialectServer.inject(...)`` (in process), ``POST /_dialect/fault`` (over
HTTP), or per request with the header ``X-Dialect-Fault: <kind>``. An armed fault fires on the next
``times`` requests to the dialect's generation endpoints (or to ``path`` if given; ``"*"`` = any endpoint).

The middleware also records every request (method, path, JSON body, headers minus credentials), so a
backend's tests can assert the exact body it sent to a server that really generates.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/_dialect"
FAULT_HEADER = "x-dialect-fault"
SECONDS_HEADER = "x-dialect-fault-seconds"

# Faults the middleware performs itself, and faults it hands to the dialect's handler through the scope
# (``scope["dialect_fault"]``) because only the handler can produce them in the dialect's response shape.
TRANSPORT_FAULTS = ("http_500", "http_503", "slow", "truncated", "disconnect")
GENERATION_FAULTS = ("empty", "ignore_constraint", "replace_text")
FAULT_KINDS = TRANSPORT_FAULTS + GENERATION_FAULTS


@dataclass
class Fault:
    """One armed fault. ``seconds`` is for ``slow``; ``text`` for ``replace_text``."""

    kind: str
    times: int = 1
    path: str | None = None
    seconds: float = 5.0
    text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {', '.join(FAULT_KINDS)}")
        if self.times < 1:
            raise ValueError("times must be at least 1")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it; ``json`` is None when the body was not JSON."""

    method: str
    path: str
    json: Any
    headers: dict[str, str]


class FaultSwitch:
    """ASGI middleware: admin endpoints, request log, API key check, and the armed faults."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        generation_paths: tuple[str, ...],
        error_body: Callable[[int, str], Any],
        unauthorized: Callable[[str], tuple[int, Any] | None] | None = None,
        api_key: str | None = None,
    ):
        self.app = app
        self.api_key = api_key
        self.generation_paths = generation_paths
        self.error_body = error_body
        self.unauthorized = unauthorized
        self.faults: list[Fault] = []
        self.requests: deque[RecordedRequest] = deque(maxlen=100)
        self._lock = threading.Lock()

    # -- the in-process API (DialectServer delegates here) ------------------------------------------------
    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                wanted = fault.path
                if wanted == "*" or wanted == path or (wanted is None and path in self.generation_paths):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        path = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self._admin(scope, body, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        self._record(scope, path, body, headers)
        if self.api_key and self.unauthorized and headers.get("authorization") != f"Bearer {self.api_key}":
            refusal = self.unauthorized(path)  # None: this dialect leaves the path open
            if refusal is not None:
                await _send_json(send, refusal[0], refusal[1])
                return
        try:
            fault = self._from_header(headers) or self._take(path)
        except ValueError as exc:  # a mistyped X-Dialect-Fault header is the test's bug: say so
            await _send_json(send, 400, {"error": f"bad {FAULT_HEADER} header: {exc}"})
            return
        replay = _replayer(body, receive)
        if fault is None:
            await self.app(scope, replay, send)
            return
        if fault.kind in ("http_500", "http_503"):
            status = int(fault.kind[-3:])
            await _send_json(send, status, self.error_body(status, f"injected fault: HTTP {status}"))
        elif fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            await self.app(scope, replay, send)
        elif fault.kind in ("truncated", "disconnect"):
            await self._cut(scope, replay, send, fault.kind)
        else:
            scope["dialect_fault"] = fault
            await self.app(scope, replay, send)

    def _from_header(self, headers: dict[str, str]) -> Fault | None:
        kind = headers.get(FAULT_HEADER)
        if not kind:
            return None
        return Fault(kind=kind.strip(), seconds=float(headers.get(SECONDS_HEADER, "5")))

    def _record(self, scope: Scope, path: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        safe = {k: v for k, v in headers.items() if k not in ("authorization", "x-api-key")}
        with self._lock:
            self.requests.append(RecordedRequest(scope["method"], path, parsed, safe))

    def recorded(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (a copy: the server thread keeps appending)."""
        with self._lock:
            return list(self.requests)

    async def _cut(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        """Run the app, then send half its body: complete-but-invalid JSON, or a connection that drops."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        full = b"".join(chunks)
        half = full[: max(1, len(full) // 2)]
        declared = len(half) if kind == "truncated" else len(full)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(declared).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        # "disconnect": promise the full length, send half and return; uvicorn then closes the connection.
        await send({"type": "http.response.body", "body": half, "more_body": kind == "disconnect"})

    async def _admin(self, scope: Scope, body: bytes, send: Send) -> None:
        path, method = scope["path"][len(ADMIN_PREFIX) :], scope["method"]
        if path == "/fault" and method == "POST":
            try:
                self.inject(Fault(**json.loads(body or b"{}")))
            except (TypeError, ValueError) as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
            await _send_json(send, 200, {"armed": [asdict(f) for f in self.faults]})
        elif path == "/fault" and method == "DELETE":
            self.clear()
            await _send_json(send, 200, {"armed": []})
        elif path == "/requests" and method == "GET":
            await _send_json(send, 200, {"requests": [asdict(r) for r in self.recorded()]})
        elif path == "/health" and method == "GET":
            await _send_json(send, 200, {"status": "ok"})
        else:
            await _send_json(send, 404, {"error": f"no admin endpoint {method} {ADMIN_PREFIX}{path}"})


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _replayer(body: bytes, receive: Receive) -> Receive:
    """Hand the app the body read for the log, then the real channel (which reports a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, content: Any) -> None:
    raw = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
