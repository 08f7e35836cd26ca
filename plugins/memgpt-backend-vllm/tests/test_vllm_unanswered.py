"""`memgpt run` with the vllm backend on a server that is not there, and on one that accepts the connection
and never answers: one clear error each, no retry lines, no traceback, the message kept (issue 12 item 2)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from memgpt.testing.backend import dead_endpoint


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listener whose backlog completes every TCP handshake while nobody ever reads or answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def run(url: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "unanswered", "--first", "--yes", "--backend", "vllm"]
    args += ["--model-endpoint", url, "--model-wrapper", "chatml-grammar", "--message", "Please remember I like tea.", *extra]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=300)
    return out, [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow  # waits out a real deadline
def test_a_server_that_never_answers_is_one_error_naming_the_deadline(silent_url: str) -> None:
    out, lines = run(silent_url)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "retry" not in out.stderr.lower(), out.stderr
    (error,) = [line for line in lines if line["type"] == "error"]
    assert "accepted the connection but sent nothing" in error["text"] and "first-byte deadline" in error["text"]
    assert silent_url in error["text"] and "/retry" in error["text"]


def test_a_server_that_is_not_there_is_one_error_and_no_retry_lines() -> None:
    url = dead_endpoint()
    out, lines = run(url)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "retry" not in out.stderr.lower(), out.stderr
    (error,) = [line for line in lines if line["type"] == "error"]
    assert "cannot connect to vLLM" in error["text"] and url in error["text"]
