"""Record what a client says to a real server, and compare JSON *shapes* (for the recorded-exchange tests).

- ``RecordingProxy(upstream)``: a plain HTTP proxy on 127.0.0.1 that forwards every request to ``upstream``
  unchanged and keeps each exchange (method, path, request body, status, response body). Point the client
  under test at ``proxy.url``: nothing in the client changes, and a client in another process (``memgpt
  run``) is recorded the same way. ``proxy.actor`` / ``proxy.label`` mark the exchanges that follow; the
  ``Authorization`` header is never kept, only which of the given ``keys`` it carried ("none", a key's label,
  or "other").
- ``shape(value)``: a JSON value's shape (keys and JSON types, recursively); ``shape_mismatches(real, ours)``
  lists where two values' shapes differ, as ``$.results[0].finish_reason: str vs null`` lines.

Stdlib and httpx only, so that scripts outside pytest (``scripts/record-*.py``) can use it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

#: Request headers never forwarded as-is (hop-by-hop, or set again by httpx).
_SKIP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding", "keep-alive"}


def _decode(raw: bytes) -> Any:
    """JSON if the bytes are JSON, otherwise the text (or None for no body)."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class RecordingProxy:
    """Forward to ``upstream`` and record every exchange (see the module docstring)."""

    def __init__(self, upstream: str, *, keys: dict[str, str] | None = None, timeout: float = 1800.0):
        self.upstream = upstream.rstrip("/")
        self.keys = dict(keys or {})
        self.exchanges: list[dict[str, Any]] = []
        self.actor = "client"
        self.label = ""
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
                auth = self.headers.get("authorization")
                answer = proxy._client.request(self.command, proxy.upstream + self.path, content=raw, headers=headers)
                body = answer.content
                proxy._record(self.command, self.path, raw, auth, answer.status_code, body)
                self.send_response(answer.status_code)
                content_type = answer.headers.get("content-type")
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def take(self) -> list[dict[str, Any]]:
        """The exchanges recorded so far, and a fresh log."""
        with self._lock:
            taken, self.exchanges = self.exchanges, []
        return taken

    def _record(self, method: str, path: str, raw: bytes, auth: str | None, status: int, body: bytes) -> None:
        if auth is None:
            key = "none"
        else:
            token = auth.removeprefix("Bearer ").strip()
            key = next((label for label, value in self.keys.items() if value == token), "other")
        with self._lock:
            self.exchanges.append(
                {
                    "actor": self.actor,
                    **({"label": self.label} if self.label else {}),
                    "method": method,
                    "path": path,
                    "api_key": key,
                    "request": _decode(raw),
                    "status": status,
                    "response": _decode(body),
                }
            )


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively: ``{"a": [1]}`` -> ``{"a": ["int"]}``; a list's shape lists the
    distinct shapes of its items (an empty list is ``[]``)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in items:
                items.append(s)
        return items
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return str(shape(value))


def shape_mismatches(real: Any, ours: Any, where: str = "$") -> list[str]:
    """Where ``ours`` differs in shape from ``real``: missing or extra keys, other JSON types. Items of a
    list are compared with the other list's first item (an empty list matches any list)."""
    if isinstance(real, dict) and isinstance(ours, dict):
        problems = [f"{where}.{k}: missing" for k in real if k not in ours]
        problems += [f"{where}.{k}: extra" for k in ours if k not in real]
        for k in real:
            if k in ours:
                problems += shape_mismatches(real[k], ours[k], f"{where}.{k}")
        return problems
    if isinstance(real, list) and isinstance(ours, list):
        if not real or not ours:
            return []
        problems = []
        for i, item in enumerate(ours):
            problems += shape_mismatches(real[0], item, f"{where}[{i}]")
        for i, item in enumerate(real[1:], 1):
            problems += shape_mismatches(item, ours[0], f"{where}[{i}]")
        return sorted(set(problems))
    if _kind(real) != _kind(ours):
        return [f"{where}: {_kind(real)} vs {_kind(ours)}"]
    return []
