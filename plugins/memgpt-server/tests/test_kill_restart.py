"""``kill -9`` of a ``memgpt server`` process in the middle of a turn, then a restart on the same home:
every committed step is still there, a message whose first step never committed is pending, and retry
answers it."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest


def kill_during(process: Any, message: str, started: Callable[[httpx.Client], bool]) -> None:
    """Send ``message`` and ``kill -9`` the server once ``started(client)`` holds (the turn still running)."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            httpx.post(f"{process.url}/v1/agents/sam/messages", json={"message": message}, timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    with httpx.Client(base_url=process.url, timeout=30) as client:
        deadline = time.monotonic() + 10
        while not started(client):
            assert time.monotonic() < deadline, "the turn never reached the point to kill at"
            time.sleep(0.05)
        assert client.get("/v1/agents/sam").json()["busy"] is True
    os.kill(process.proc.pid, signal.SIGKILL)
    process.proc.wait(timeout=10)
    sender.join(timeout=10)
    assert errors, "the request in flight should have lost its connection"


def intact(home: Path) -> bool:
    with sqlite3.connect(home / "memgpt.db") as conn:
        return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


@pytest.mark.slow
def test_kill_9_mid_turn_then_restart_loses_no_committed_step(home: Path, server_process: Any) -> None:
    first = server_process()
    with httpx.Client(base_url=first.url, timeout=30) as client:
        assert client.post("/v1/agents", json={"name": "sam"}).status_code == 201
        for i in range(3):
            reply = client.post("/v1/agents/sam/messages", json={"message": f"message {i}"}).json()["replies"]
            assert reply == [f"echo: message {i}"]

    # 1. Killed between the two steps of a chain: the first step (a core memory edit) committed and
    #    took the message off pending; the second never ran.
    chained = "then-slow:3 likes jazz"
    kill_during(first, chained, lambda c: "likes jazz" in c.get("/v1/agents/sam/memory").json()["blocks"]["human"])
    assert intact(home)
    second = server_process()  # the dead process's session lock went with it
    with httpx.Client(base_url=second.url, timeout=30) as client:
        agent = client.get("/v1/agents/sam").json()
        assert agent["messages"] == 3 * 3 + 3  # 3 turns of (message, call, result), then the first step
        assert agent["pending"] == []
        for i in range(3):
            assert client.get("/v1/agents/sam/recall", params={"query": f"message {i}"}).json()["total"] == 2
        assert client.get("/v1/agents/sam/recall", params={"query": "jazz"}).json()["total"] == 1
        assert "likes jazz" in client.get("/v1/agents/sam/memory").json()["blocks"]["human"]

    # 2. Killed inside a chain's first step: nothing of it committed, the message is pending.
    waiting = "slow:3 are you there"
    kill_during(second, waiting, lambda c: c.get("/v1/agents/sam/pending").json()["pending"] == [waiting])
    assert intact(home)
    third = server_process()
    with httpx.Client(base_url=third.url, timeout=30) as client:
        agent = client.get("/v1/agents/sam").json()
        assert agent["pending"] == [waiting] and agent["messages"] == 12
        retried = client.post("/v1/agents/sam/retry")
        assert retried.status_code == 200 and retried.json()["replies"] == [f"echo: {waiting}"]
        assert client.get("/v1/agents/sam/pending").json() == {"pending": []}
        assert client.get("/v1/agents/sam").json()["messages"] == 15
        assert client.post("/v1/agents/sam/messages", json={"message": "after"}).json()["replies"] == ["echo: after"]
