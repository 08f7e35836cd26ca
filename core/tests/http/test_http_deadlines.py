"""The HTTP layer's deadlines against real sockets: a server that accepts the connection and never answers,
one that is not there, and the turn deadline. No timing is asserted; what is checked is which deadline the
error names, that a silent server is asked once rather than again and again, and how a completion's deadline
follows its max_tokens and the measured speed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from memgpt.contract.backend import BackendSettings, Capabilities
from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, Constraint, Usage
from memgpt.errors import BackendTimeout, BackendUnreachable
from memgpt.http import _client as http
from memgpt.http._backend import ASSUMED_TOKENS_PER_SECOND, HTTPBackend
from memgpt.http._client import Deadlines, HTTPClient, turn_deadline
from memgpt.testing.backend import dead_endpoint


class SilentServer:
    """Accepts every connection, reads what is sent, and never answers; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def fast_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "PROBE_TIMEOUT", 0.5)


class TinyBackend(HTTPBackend):
    """The smallest dialect: ``/count`` for tokens, ``/complete`` for text."""

    name = "tiny"
    server = "tiny-server"
    complete_path = "/complete"
    capabilities = Capabilities(tokenizer=True, context_probe=True)

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        return {"prompt": request.prompt, "max_tokens": request.max_tokens}

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        return Completion(text=body["text"], usage=Usage(completion_tokens=body.get("tokens", 1)))

    def _count(self, text: str) -> int:
        return int(self.http.post_json("/count", {"text": text})["count"])

    def _probe(self) -> BackendStatus:
        self.http.get_json("/info")
        return BackendStatus(ok=True, endpoint=self.endpoint, model="tiny", context_window=2048)


def test_a_silent_server_fails_token_counting_once_naming_the_first_byte_deadline(
    silent: SilentServer, fast_probes: None
) -> None:
    backend = TinyBackend(BackendSettings(endpoint=silent.url, retries=2))
    with pytest.raises(BackendTimeout) as caught:
        backend.count_tokens("Hello")
    message = str(caught.value)
    assert "accepted the connection but sent nothing within 0.5s" in message and "first-byte deadline" in message
    assert silent.url in message and not caught.value.retryable
    # The next counts (the agent counts every message) fail at once instead of each waiting again.
    for text in ("again", "and again"):
        with pytest.raises(BackendTimeout, match="not asking again"):
            backend.count_tokens(text)
    assert silent.connections == 1
    status = backend.check()  # a probe says the same, in one line
    assert not status.ok and "\n" not in status.line()


def test_a_completion_on_a_silent_server_stops_at_the_turn_deadline(silent: SilentServer) -> None:
    backend = TinyBackend(BackendSettings(endpoint=silent.url, retries=2))
    with turn_deadline(0.5), pytest.raises(BackendTimeout) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=1024))
    assert "turn deadline of 0.5s" in str(caught.value) and "--turn-timeout" in str(caught.value)
    assert silent.connections == 1


def test_a_turn_deadline_that_has_passed_sends_nothing(silent: SilentServer) -> None:
    backend = TinyBackend(BackendSettings(endpoint=silent.url))
    with turn_deadline(0.0), pytest.raises(BackendTimeout, match="turn deadline"):
        backend.count_tokens("Hi")
    assert silent.connections == 0


def test_the_users_fixed_timeout_is_named_when_it_fires(silent: SilentServer) -> None:
    backend = TinyBackend(BackendSettings(endpoint=silent.url, timeout=0.5, retries=2))
    with pytest.raises(BackendTimeout) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=8))
    assert "within 0.5s" in str(caught.value) and "`timeout` under [model]" in str(caught.value)
    assert silent.connections == 1


def test_nothing_listening_is_unreachable_and_check_is_one_line() -> None:
    backend = TinyBackend(BackendSettings(endpoint=dead_endpoint(), retries=0))
    with pytest.raises(BackendUnreachable, match="cannot connect"):
        backend.count_tokens("Hi")
    status = backend.check()
    assert not status.ok and backend.last_check == status and "\n" not in status.line()


def test_a_completion_deadline_follows_max_tokens_and_the_measured_speed() -> None:
    backend = TinyBackend(BackendSettings(endpoint="http://127.0.0.1:9"))
    short = backend.completion_deadlines(CompletionRequest(prompt="Hi", max_tokens=16))
    long = backend.completion_deadlines(CompletionRequest(prompt="Hi", max_tokens=1024))
    assert short.total < long.total and long.first_byte == long.total
    assert long.total > 1024 / ASSUMED_TOKENS_PER_SECOND  # an unconstrained 1024-token retry fits at the assumed speed
    assert "max_tokens=1024" in long.why and "assumed" in long.why
    backend._note_speed(Completion(text="x", usage=Usage(completion_tokens=100)), seconds=10.0)  # 10 tokens/s
    measured = backend.completion_deadlines(CompletionRequest(prompt="Hi", max_tokens=1024))
    assert measured.total < long.total and "10.0 tokens/s (measured)" in measured.why
    assert measured.total > 1024 / 10.0
    fixed = TinyBackend(BackendSettings(endpoint="http://127.0.0.1:9", timeout=42.0)).completion_deadlines(
        CompletionRequest(prompt="Hi", max_tokens=1024)
    )
    assert (fixed.first_byte, fixed.total) == (42.0, 42.0)


def test_deadlines_within_a_fixed_timeout() -> None:
    assert Deadlines(connect=5, first_byte=300, total=300, why="derived").within(60).total == 60
    assert Deadlines.probe().within(None) == Deadlines.probe()


def test_http_client_takes_no_timeout_by_default() -> None:
    client = HTTPClient("http://127.0.0.1:9", server="s", backend="b")
    assert client.timeout is None
    client.close()
