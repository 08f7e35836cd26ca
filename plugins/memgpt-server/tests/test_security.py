"""API key refusals, request size limits, the loopback rule, and no key in the logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from test_api import create, error_of

from conftest import SCRIPT

KEY = "sk-test-3f9a1c2e7b"


def test_without_the_right_key_every_api_call_is_refused(serve: Any) -> None:
    running = serve(api_key=KEY)
    with running.client() as anonymous:
        for method, path in (
            ("GET", "/v1/agents"),
            ("GET", "/v1/models"),
            ("POST", "/v1/chat/completions"),
            ("DELETE", "/v1/agents/x"),
        ):
            response = anonymous.request(method, path, json={})
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in error_of(response) and KEY not in response.text
        assert anonymous.get("/v1/agents", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anonymous.get("/v1/agents", headers={"Authorization": f"Bearer {KEY}x"}).status_code == 401
        assert anonymous.get("/v1/agents", headers={"Authorization": f"Basic {KEY}"}).status_code == 401
        assert anonymous.get("/health").status_code == 200  # says nothing about any agent
        assert anonymous.get("/openapi.json").status_code == 200
    with running.client(headers={"Authorization": f"Bearer {KEY}"}) as client:
        create(client, "sam")
        assert client.get("/v1/agents").status_code == 200
    with running.client(headers={"X-API-Key": KEY}) as client:
        assert client.get("/v1/agents/sam").status_code == 200


def test_request_bodies_over_the_limit_are_refused(serve: Any) -> None:
    with serve(max_body=4096).client() as client:
        create(client, "sam")
        big = {"message": "x" * 5000}
        response = client.post("/v1/agents/sam/messages", json=big)
        assert response.status_code == 413 and "4096 bytes" in error_of(response)

        def chunked() -> Any:  # no Content-Length: the limit still holds
            for _ in range(10):
                yield b"x" * 1000

        response = client.post("/v1/agents/sam/messages", content=chunked(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert client.get("/v1/agents/sam/recall", params={"query": "x"}).json()["total"] == 0
        small = client.post(
            "/v1/agents/sam/messages", content=iter([b'{"message": ', b'"hi"}']), headers={"content-type": "application/json"}
        )
        assert small.status_code == 200 and small.json()["replies"] == ["echo: hi"]


def run_server_command(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEMGPT_HOME": str(home), **(env or {})},
    )


def test_a_host_beyond_loopback_needs_a_key(home: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        done = run_server_command(home, "--host", host, "--port", "1")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "API key" in lines[0]


def test_the_key_comes_from_the_credentials_file_and_never_reaches_the_log(home: Path, server_process: Any) -> None:
    (home / "credentials.toml").write_text(f'[server]\napi_key = "{KEY}"\n', encoding="utf-8")
    process = server_process()
    assert httpx.get(f"{process.url}/v1/agents").status_code == 401
    assert httpx.get(f"{process.url}/v1/agents", headers={"Authorization": "Bearer nope"}).status_code == 401
    good = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(f"{process.url}/v1/agents", json={"name": "sam"}, headers=good).status_code == 201
    assert httpx.post(f"{process.url}/v1/agents/sam/messages", json={"message": "hi"}, headers=good).status_code == 200
    process.stop()
    log = process.output()
    assert "API key required" in log and '"POST /v1/agents/sam/messages HTTP/1.1" 200' in log
    assert KEY not in log and "nope" not in log


def test_the_key_option_beats_the_environment(home: Path, server_process: Any) -> None:
    process = server_process("--api-key", KEY, env={"MEMGPT_SERVER_API_KEY": "other-key"})
    assert httpx.get(f"{process.url}/v1/agents", headers={"Authorization": "Bearer other-key"}).status_code == 401
    assert httpx.get(f"{process.url}/v1/agents", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    process.stop()
    assert KEY not in process.output()
