"""One chain at a time per agent (409 for a second message), agents in parallel, abandoned requests, and
the one-session-per-agent lock between the server and ``memgpt run``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api import create, error_of

from conftest import SCRIPT


def test_a_busy_agent_answers_409_at_once_and_loses_nothing(serve: Any) -> None:
    running = serve()
    with running.client() as client:
        create(client, "sam")
        first: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: first.update(r=client.post("/v1/agents/sam/messages", json={"message": "slow:1.5 first"}))
        )
        thread.start()
        deadline = time.monotonic() + 5
        while not running.host.busy("sam") and time.monotonic() < deadline:
            time.sleep(0.01)
        second = client.post("/v1/agents/sam/messages", json={"message": "second"})
        assert running.host.busy("sam"), "the answer came while the first turn still ran: refused, not queued"
        assert second.status_code == 409 and second.json()["error"]["code"] == "agent_busy"
        assert "busy" in error_of(second)
        chat = client.post("/v1/chat/completions", json={"model": "sam", "messages": [{"role": "user", "content": "x"}]})
        assert chat.status_code == 409
        assert client.put("/v1/agents/sam/memory/human", json={"text": "x"}).status_code == 409
        assert client.delete("/v1/agents/sam").status_code == 409
        assert client.get("/v1/agents/sam").json()["busy"] is True  # reads are served meanwhile
        thread.join()
        assert first["r"].json()["replies"] == ["echo: slow:1.5 first"]
        # the refused message was never taken: not pending, not stored; the agent takes the next one
        assert client.get("/v1/agents/sam/pending").json() == {"pending": []}
        assert client.get("/v1/agents/sam/recall", params={"query": "second"}).json()["total"] == 0
        assert client.post("/v1/agents/sam/messages", json={"message": "second"}).json()["replies"] == ["echo: second"]


def test_two_agents_run_at_once(serve: Any) -> None:
    running = serve()
    with running.client() as client:
        create(client, "ann")
        create(client, "bob")
        results: dict[str, httpx.Response] = {}

        def talk(name: str) -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
                results[name] = own.post(f"/v1/agents/{name}/messages", json={"message": f"slow:3 to {name}"})

        threads = [threading.Thread(target=talk, args=(name,)) for name in ("ann", "bob")]
        for thread in threads:
            thread.start()
        both_busy = False  # seen at some moment: both turns running at once, not one after the other
        while any(thread.is_alive() for thread in threads):
            both_busy |= running.host.busy("ann") and running.host.busy("bob")
            time.sleep(0.02)
        for thread in threads:
            thread.join()
        assert results["ann"].json()["replies"] == ["echo: slow:3 to ann"]
        assert results["bob"].json()["replies"] == ["echo: slow:3 to bob"]
        assert both_busy, "the two turns never ran at the same time"


def wait_idle(running: Any, name: str) -> None:
    deadline = time.monotonic() + 10
    time.sleep(0.1)
    while running.host.busy(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running.host.busy(name)


def test_an_abandoned_request_still_completes_its_turn(serve: Any) -> None:
    running = serve()
    with running.client() as client:
        create(client, "sam")
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/agents/sam/messages", json={"message": "slow:1.2 gone"}, timeout=0.3)
        wait_idle(running, "sam")
        # the whole turn committed (the user's message and the reply are in recall), nothing is pending
        assert client.get("/v1/agents/sam/recall", params={"query": "gone"}).json()["total"] == 2
        assert client.get("/v1/agents/sam/pending").json() == {"pending": []}
        # a stream closed after its first event: the same
        with client.stream("POST", "/v1/agents/sam/messages", json={"message": "then-slow:1 streamed away", "stream": True}) as r:
            next(r.iter_lines())
        wait_idle(running, "sam")
        assert client.get("/v1/agents/sam/recall", params={"query": "away"}).json()["total"] == 2
        assert "streamed away" in client.get("/v1/agents/sam/memory").json()["blocks"]["human"]
        assert client.get("/v1/agents/sam/pending").json() == {"pending": []}
        assert client.post("/v1/agents/sam/messages", json={"message": "still here?"}).json()["replies"] == ["echo: still here?"]


def test_the_server_and_memgpt_run_never_hold_one_agent_together(serve: Any, home: Path) -> None:
    from memgpt.locking import AgentLock

    running = serve(idle_close=600.0)
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    with running.client() as client:
        create(client, "sam")  # the server now holds sam open
        run = subprocess.run(
            [sys.executable, str(SCRIPT), "run", "--agent", "sam", "-m", "hi"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode == 1 and "open in another memgpt session" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
        # an idle agent is closed, releasing the lock: then `memgpt run` may have it
        running.host.idle_close = 0.0
        assert running.host.close_idle() == 1 and not running.host.is_open("sam")
        run = subprocess.run(
            [sys.executable, str(SCRIPT), "run", "--agent", "sam", "-m", "hi"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr

        # and an agent another process holds gets 409 from the server, with nothing stored
        with AgentLock(home, "sam"):
            refused = client.post("/v1/agents/sam/messages", json={"message": "while held"})
            assert refused.status_code == 409 and "another memgpt session" in error_of(refused)
            assert client.delete("/v1/agents/sam").status_code == 409
        assert client.get("/v1/agents/sam/recall", params={"query": "held"}).json()["total"] == 0
        assert client.post("/v1/agents/sam/messages", json={"message": "after"}).json()["replies"] == ["echo: after"]


def test_idle_agents_are_closed_by_the_server(serve: Any) -> None:
    running = serve(idle_close=3600.0)  # not idle yet: a loaded machine cannot close it before it is seen open
    with running.client() as client:
        create(client, "sam")
        assert running.host.is_open("sam")
        running.host.idle_close = 0.5
        deadline = time.monotonic() + 30  # the reaper looks again within 10 s
        while running.host.is_open("sam") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running.host.is_open("sam") and not lock_held(running, "sam")
        # and it opens again on the next message
        assert client.post("/v1/agents/sam/messages", json={"message": "back"}).json()["replies"] == ["echo: back"]


def lock_held(running: Any, name: str) -> bool:
    from memgpt.config import home
    from memgpt.errors import AgentBusyError
    from memgpt.locking import AgentLock

    try:
        with AgentLock(home(), name):
            return False
    except AgentBusyError:
        return True
