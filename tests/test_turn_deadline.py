"""`memgpt run --turn-timeout`: a turn on a server that answers its probes but generates too slowly ends at
the turn deadline, with an error that names it and how to change it (issue 12 item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def test_a_slow_generation_ends_at_the_turn_deadline_and_says_so(dialect_server: Any) -> None:
    server = dialect_server("vllm")
    server.inject("slow", times=3, seconds=30.0)  # generation only: probes and /tokenize answer at once
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "patient", "--first", "--yes", "--backend", "vllm"]
    args += ["--model-endpoint", server.url, "--model-wrapper", "chatml-grammar", "--turn-timeout", "2", "--message", "Hi"]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    (error,) = [line["text"] for line in lines if line["type"] == "error"]
    assert "turn deadline of 2s" in error and "--turn-timeout" in error and server.url in error, error
    assert "/retry" in error  # the message is kept
