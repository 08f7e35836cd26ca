"""Each server backend against its dialect test server (strict bodies, real SmolLM2 generation).

The contract (``memgpt.testing.backend.BackendContract``) runs once per backend; the fault tests then make
each server misbehave on demand (``tests/dialects/faults.py``) and check the typed error or the recovery.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from memgpt.contract import BackendSettings, CompletionRequest, Constraint
from memgpt.errors import BackendHTTPError, BackendProtocolError, BackendTimeout, BackendUnreachable, EmptyCompletion
from memgpt.http._backend import HTTPBackend
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, GREEDY, BackendContract
from memgpt_backend_koboldcpp.backend import KoboldCppBackend
from memgpt_backend_lmstudio.backend import LMStudioBackend
from memgpt_backend_vllm.backend import VLLMBackend
from memgpt_backend_webui.backend import WebUIBackend

pytestmark = pytest.mark.model

BACKENDS: dict[str, type[HTTPBackend]] = {
    "koboldcpp": KoboldCppBackend,
    "webui": WebUIBackend,
    "lmstudio": LMStudioBackend,
    "vllm": VLLMBackend,
}
ServerFactory = Callable[..., Any]


def open_backend(
    dialect_server: ServerFactory, name: str, *, server_options: dict[str, Any] | None = None, **settings: Any
) -> tuple[Any, HTTPBackend]:
    server = dialect_server(name, **(server_options or {}))
    settings.setdefault("options", {"backoff": 0.0})
    # webui cannot report its context size: the user configures it (the dialect server runs 4096).
    if name == "webui":
        settings.setdefault("context_window", 4096)
    return server, BACKENDS[name](BackendSettings(endpoint=server.url, **settings))


class DialectContract(BackendContract):
    dialect: str = ""

    @pytest.fixture
    def backend(self, dialect_server: ServerFactory) -> HTTPBackend:
        return open_backend(dialect_server, self.dialect, timeout=120.0)[1]


class TestKoboldCppOnItsDialect(DialectContract):
    dialect = "koboldcpp"


class TestWebUIOnItsDialect(DialectContract):
    dialect = "webui"


class TestLMStudioOnItsDialect(DialectContract):
    dialect = "lmstudio"


class TestVLLMOnItsDialect(DialectContract):
    dialect = "vllm"


ANSWER = Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA)
QUESTION = BackendContract.question


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_500_is_retried_and_the_answer_arrives(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name, retries=2)
    server.inject("http_500")
    completion = backend.complete(CompletionRequest(prompt="Hello", max_tokens=3, sampling=GREEDY))
    assert completion.text
    assert len([r for r in server.requests if r.path == backend.complete_path]) == 2


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_503_that_persists_is_an_http_error_saying_wait(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name, retries=1)
    server.inject("http_503", times=2)
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))
    assert caught.value.status_code == 503 and "wait" in str(caught.value) and server.url in str(caught.value)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_slow_server_is_a_timeout(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name, retries=2, timeout=0.5)
    backend.check()  # probes answered at once; only generation is slow
    server.inject("slow", seconds=1.5)
    with pytest.raises(BackendTimeout) as caught:
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    assert "0.5s" in str(caught.value)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_truncated_body_is_a_protocol_error(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name)
    server.inject("truncated")
    with pytest.raises(BackendProtocolError, match="not JSON"):
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_dropped_connection_is_unreachable_and_retried(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name, retries=0)
    server.inject("disconnect")
    with pytest.raises(BackendUnreachable, match="broke"):
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))
    server, patient = open_backend(dialect_server, name, retries=1)
    server.inject("disconnect")
    assert patient.complete(CompletionRequest(prompt="Hello", max_tokens=3)).text


@pytest.mark.parametrize("name", list(BACKENDS))
def test_empty_text_is_an_empty_completion(dialect_server: ServerFactory, name: str) -> None:
    server, backend = open_backend(dialect_server, name, retries=1)
    server.inject("empty", times=2)
    with pytest.raises(EmptyCompletion):
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_server_that_ignores_the_constraint_is_caught(
    dialect_server: ServerFactory, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, backend = open_backend(dialect_server, name)
    server.inject("replace_text", text="Sure, the sky is blue.")
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend.complete(CompletionRequest(prompt=QUESTION, max_tokens=24, constraint=ANSWER, sampling=GREEDY))
    assert completion.constrained_by is None and backend.ignored_constraints == 1
    assert any("ignored the" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_the_api_key_is_sent_and_a_missing_one_explained(dialect_server: ServerFactory, name: str) -> None:
    secret = "s3cret-key-for-" + name
    _, keyed = open_backend(dialect_server, name, server_options={"api_key": secret}, api_key=secret)
    assert keyed.complete(CompletionRequest(prompt="Hello", max_tokens=2, sampling=GREEDY)).text
    _, keyless = open_backend(dialect_server, name, server_options={"api_key": secret}, model=keyed.check().model)
    with pytest.raises(BackendHTTPError) as caught:
        keyless.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    assert caught.value.status_code == 401 and "API key" in str(caught.value)
    assert secret not in repr(keyed) and secret not in str(caught.value)


def test_lmstudio_token_estimate_converges_on_the_servers_count(dialect_server: ServerFactory) -> None:
    _, backend = open_backend(dialect_server, "lmstudio")
    prompt = "The quick brown fox jumps over the lazy dog. " * 12
    completion = backend.complete(CompletionRequest(prompt=prompt, max_tokens=2, sampling=GREEDY))
    assert completion.usage.exact
    assert backend.count_tokens(prompt) == completion.usage.prompt_tokens


def test_vllm_sends_structured_outputs_the_strict_server_accepts(dialect_server: ServerFactory) -> None:
    server, backend = open_backend(dialect_server, "vllm")
    completion = backend.complete(CompletionRequest(prompt=QUESTION, max_tokens=48, constraint=ANSWER, sampling=GREEDY))
    assert completion.constrained_by == "gbnf"  # the grammar first: no free whitespace to spend tokens on
    assert server.last_request("/v1/completions").json["structured_outputs"] == {"grammar": ANSWER_GBNF}
    schema_only = Constraint(json_schema=ANSWER_SCHEMA)
    completion = backend.complete(CompletionRequest(prompt=QUESTION, max_tokens=48, constraint=schema_only, sampling=GREEDY))
    assert completion.constrained_by == "json_schema"
    assert server.last_request("/v1/completions").json["structured_outputs"] == {"json": ANSWER_SCHEMA}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_a_scripted_memgpt_run_completes_on_each_dialect(dialect_server: ServerFactory, name: str) -> None:
    """`memgpt run` non-interactively, in a subprocess, against the dialect server: the whole path from the
    CLI through the agent loop, the wrapper and the backend."""
    server = dialect_server(name)
    args = [sys.executable, "-m", "memgpt", "run", "--agent", f"on-{name}", "--first", "--yes"]
    args += ["--backend", name, "--model-endpoint", server.url, "--model-wrapper", "chatml-grammar", "--context-window", "4096"]
    for text in ("Hello there", "My name is Bo"):
        args += ["--message", text]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "session" and lines[0]["backend"] == name
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == 2 and not [line for line in lines if line["type"] == "error"], out.stdout[-3000:]
    assert all(t["usage"]["prompt_tokens"] > 0 and t["usage"]["completion_tokens"] > 0 for t in turns)
    generated = [r for r in server.requests if r.path == BACKENDS[name].complete_path]
    assert len(generated) >= 2
