"""The Ollama backend against the Ollama dialect test server (``tests/dialects/ollama.py``: strict bodies, real
SmolLM2 generation under the JSON schema in ``format``), and the dialect server itself.

Ollama cannot be installed here, so this is the closest check: the backend's contract, its fault handling,
the server's documented behaviour (usage counts, ``done_reason``, stop strings, ``num_predict``, errors) and
a scripted ``memgpt run`` of two turns.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest

from memgpt.contract import BackendSettings, CompletionRequest, Constraint
from memgpt.errors import BackendHTTPError, BackendProtocolError, BackendTimeout, BackendUnreachable, EmptyCompletion
from memgpt.testing.backend import ANSWER_SCHEMA, GREEDY, BackendContract
from memgpt_backend_ollama.backend import OllamaBackend
from tests.dialects.clients import OLLAMA, OLLAMA_MODEL

pytestmark = pytest.mark.model

ServerFactory = Callable[..., Any]
PROMPT = (
    "<|im_start|>system\nReply with one JSON function call.<|im_end|>\n"
    "<|im_start|>user\nSay hello to Ann.<|im_end|>\n<|im_start|>assistant\n"
)
SCHEMA = {
    "type": "object",
    "properties": {
        "function": {"type": "string", "enum": ["send_message"]},
        "params": {"type": "object", "properties": {"message": {"type": "string", "maxLength": 24}}, "required": ["message"]},
    },
    "required": ["function", "params"],
}
FORCED = "alpha, beta, gamma, delta"
ANSWER = Constraint(json_schema=ANSWER_SCHEMA)
QUESTION = BackendContract.question
TIMEOUT = 120.0


def open_backend(dialect_server: ServerFactory, *, server_options: dict[str, Any] | None = None, **settings: Any) -> Any:
    server = dialect_server("ollama", **(server_options or {}))
    settings.setdefault("options", {"backoff": 0.0})
    return server, OllamaBackend(BackendSettings(endpoint=server.url, **settings))


def post(server: Any, body: dict[str, Any], path: str = "/api/generate") -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=TIMEOUT)


class TestOllamaOnItsDialect(BackendContract):
    @pytest.fixture
    def backend(self, dialect_server: ServerFactory) -> OllamaBackend:
        return open_backend(dialect_server, timeout=120.0)[1]


# -- the backend on the dialect server ---------------------------------------------------------------------


def tokens(llama: Any, text: str) -> list[int]:
    """The server's count: special tokens parsed, BOS only if the model adds one (SmolLM2: no)."""
    return list(llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))


def test_the_strict_server_accepts_the_backends_body(dialect_server: ServerFactory, llama: Any) -> None:
    server, backend = open_backend(dialect_server)
    completion = backend.complete(CompletionRequest(prompt=QUESTION, max_tokens=48, constraint=ANSWER, sampling=GREEDY))
    assert completion.constrained_by == "json_schema"
    body = server.last_request("/api/generate").json
    assert body["format"] == ANSWER_SCHEMA and body["raw"] is True and body["stream"] is False
    assert body["options"]["num_ctx"] == backend.context_window() == 4096
    assert completion.usage.exact and completion.usage.prompt_tokens == len(tokens(llama, QUESTION))
    assert completion.usage.cached_tokens is None  # Ollama does not tell: unknown, not 0


def test_a_fully_cached_prompt_without_a_count_is_estimated_not_zero(dialect_server: ServerFactory) -> None:
    server, backend = open_backend(dialect_server, server_options={"legacy_prompt_count": True})
    request = CompletionRequest(prompt=BackendContract.prompt, max_tokens=4, sampling=GREEDY)
    first = backend.complete(request)
    again = backend.complete(request)  # the same prompt: all in the KV cache
    assert first.usage.exact and first.usage.prompt_tokens > 0
    assert "prompt_eval_count" not in post(server, server.last_request("/api/generate").json).json()
    assert not again.usage.exact and again.usage.prompt_tokens > 0 and again.usage.evaluated_tokens is None


def test_token_counts_are_estimates_unless_the_server_tokenizes(dialect_server: ServerFactory, llama: Any) -> None:
    text = "<|im_start|>user\nHow are you today, my friend?<|im_end|>\n"
    _, plain = open_backend(dialect_server)
    assert plain.count_tokens(text) > 0 and plain.has_tokenizer is False and not plain.capabilities.tokenizer
    tokenizing, exact = open_backend(dialect_server, server_options={"tokenize": True})
    assert exact.count_tokens(text) == len(tokens(llama, text)) and exact.capabilities.tokenizer
    assert tokenizing.last_request("/api/tokenize").json == {"model": OLLAMA_MODEL, "text": text}


def test_a_model_not_pulled_names_ollama_pull(dialect_server: ServerFactory) -> None:
    _, backend = open_backend(dialect_server, model="llama3.2")
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    assert "`ollama pull llama3.2`" in str(caught.value) and "\n" not in str(caught.value)
    status = backend.check()
    assert not status.ok and "ollama pull llama3.2" in status.line()


def test_a_prompt_beyond_num_ctx_is_an_error_not_silently_cut(dialect_server: ServerFactory) -> None:
    server, backend = open_backend(dialect_server, context_window=256)
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="word " * 400, max_tokens=2))
    assert caught.value.status_code == 400 and "context size" in str(caught.value)
    # Without truncate: false, Ollama keeps num_keep tokens and drops the front half of the rest.
    body = OLLAMA.request("word " * 400, 2, num_ctx=256)
    data = post(server, body).json()
    assert data["prompt_eval_count"] < 256 and data["done_reason"] in ("stop", "length")


def test_a_500_is_retried_and_a_503_says_wait(dialect_server: ServerFactory) -> None:
    server, backend = open_backend(dialect_server, retries=2)
    server.inject("http_500")
    assert backend.complete(CompletionRequest(prompt="Hello", max_tokens=3, sampling=GREEDY)).text
    assert len([r for r in server.requests if r.path == "/api/generate"]) == 2
    server, backend = open_backend(dialect_server, retries=1)
    server.inject("http_503", times=2)
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))
    assert caught.value.status_code == 503 and "wait" in str(caught.value) and "server busy" in str(caught.value)


def test_slow_truncated_dropped_and_empty_answers(dialect_server: ServerFactory) -> None:
    server, slow = open_backend(dialect_server, timeout=0.5)
    slow.check()
    server.inject("slow", seconds=1.5)
    with pytest.raises(BackendTimeout, match=r"0\.5s"):
        slow.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    server, backend = open_backend(dialect_server, retries=0)
    server.inject("truncated")
    with pytest.raises(BackendProtocolError, match="not JSON"):
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))
    server.inject("disconnect")
    with pytest.raises(BackendUnreachable, match="broke"):
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=3))
    server, patient = open_backend(dialect_server, retries=1)
    server.inject("empty", times=2)
    with pytest.raises(EmptyCompletion):
        patient.complete(CompletionRequest(prompt="Hello", max_tokens=3))


def test_a_server_that_ignores_the_schema_is_caught(dialect_server: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    server, backend = open_backend(dialect_server)
    server.inject("replace_text", text="Sure, the sky is blue.")
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend.complete(CompletionRequest(prompt=QUESTION, max_tokens=24, constraint=ANSWER, sampling=GREEDY))
    assert completion.constrained_by is None and backend.ignored_constraints == 1
    assert any("ignored the" in r.getMessage() for r in caplog.records)


def test_the_api_key_of_a_proxy_in_front_is_sent(dialect_server: ServerFactory) -> None:
    secret = "s3cret-key-for-ollama"
    _, keyed = open_backend(dialect_server, server_options={"api_key": secret}, api_key=secret)
    assert keyed.complete(CompletionRequest(prompt="Hello", max_tokens=2, sampling=GREEDY)).text
    _, keyless = open_backend(dialect_server, server_options={"api_key": secret}, model=OLLAMA_MODEL, context_window=4096)
    with pytest.raises(BackendHTTPError) as caught:
        keyless.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    assert caught.value.status_code == 401 and "API key" in str(caught.value) and secret not in str(caught.value)


def test_a_scripted_memgpt_run_of_two_turns(dialect_server: ServerFactory) -> None:
    """`memgpt run --model-endpoint-type ollama` non-interactively, in a subprocess, against the dialect server."""
    server = dialect_server("ollama")
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "on-ollama", "--first", "--yes"]
    args += ["--model-endpoint-type", "ollama", "--model-endpoint", server.url, "--model-wrapper", "chatml-grammar"]
    args += ["--context-window", "4096"]
    for text in ("Hello there", "My name is Bo"):
        args += ["--message", text]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "session" and lines[0]["backend"] == "ollama"
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == 2 and not [line for line in lines if line["type"] == "error"], out.stdout[-3000:]
    assert all(t["usage"]["prompt_tokens"] > 0 and t["usage"]["completion_tokens"] > 0 for t in turns)
    generated = [r for r in server.requests if r.path == "/api/generate"]
    assert all(r.json["raw"] and r.json["stream"] is False for r in generated)
    assert len([r for r in generated if isinstance(r.json.get("format"), dict)]) >= 2  # the call schema, every turn


# -- the dialect server itself -------------------------------------------------------------------------------


def test_constrained_output_matches_the_schema_and_counts_are_llama_cpps(ollama_server: Any, llama: Any) -> None:
    response = post(ollama_server, OLLAMA.request(PROMPT, 64, ("schema", SCHEMA), stop=("<|im_end|>",)))
    assert response.status_code == 200, response.text
    data = response.json()
    jsonschema.validate(json.loads(data["response"]), SCHEMA)
    assert data["done"] is True and data["done_reason"] == "stop" and "context" not in data  # raw: no context
    assert data["prompt_eval_count"] == len(tokens(llama, PROMPT)) and 0 < data["eval_count"] <= 64
    assert data["model"] == OLLAMA_MODEL and data["created_at"].endswith("Z")


def test_stop_strings_and_num_predict(ollama_server: Any) -> None:
    stopped = post(ollama_server, OLLAMA.request("Recite:", 32, ("literal", FORCED), stop=(", gamma",))).json()
    assert stopped["response"] == json.dumps(FORCED).split(", gamma")[0] and stopped["done_reason"] == "stop"
    cut = post(ollama_server, OLLAMA.request("Letters:", 5, ("schema", {"type": "string", "minLength": 80}))).json()
    assert cut["done_reason"] == "length" and cut["eval_count"] == 5 and cut["response"]


def test_model_listing_show_and_ps(ollama_server: Any, llama: Any) -> None:
    url = ollama_server.url
    (tag,) = httpx.get(url + "/api/tags").json()["models"]
    assert tag["name"] == tag["model"] == OLLAMA_MODEL and tag["details"]["format"] == "gguf"
    show = httpx.post(url + "/api/show", json={"model": OLLAMA_MODEL}).json()
    assert show["model_info"]["llama.context_length"] == int(llama.metadata["llama.context_length"])
    assert "<|im_start|>" in show["template"] and show["capabilities"] == ["completion"]
    assert httpx.post(url + "/api/show", json={"model": "nope"}).json() == {"error": "model 'nope' not found"}
    post(ollama_server, OLLAMA.request("Hi", 1))
    (running,) = httpx.get(url + "/api/ps").json()["models"]
    assert running["model"] == OLLAMA_MODEL and running["context_length"] == 4096
    unload = post(ollama_server, {"model": OLLAMA_MODEL, "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload" and httpx.get(url + "/api/ps").json() == {"models": []}
    assert httpx.get(url + "/api/version").json() == {"version": "0.33.0-rc2"}


def test_strict_bodies_and_ollamas_errors(ollama_server: Any) -> None:
    misspelled = OLLAMA.request("Hi", 2)
    misspelled["options"]["tempreature"] = 0.1
    response = post(ollama_server, misspelled)
    assert response.status_code == 400 and "tempreature" in response.json()["error"]
    top_level = post(ollama_server, OLLAMA.request("Hi", 2) | {"temperature": 0.1})  # an option outside `options`
    assert top_level.status_code == 400 and "temperature" in top_level.json()["error"]
    streamed = OLLAMA.request("Hi", 2)
    del streamed["stream"]  # Ollama streams by default
    assert post(ollama_server, streamed).status_code == 400
    missing = post(ollama_server, OLLAMA.request("Hi", 2, model="llama3"))
    assert missing.status_code == 404 and missing.json() == {"error": "model 'llama3' not found"}
    raw_system = post(ollama_server, OLLAMA.request("Hi", 2, system="be brief"))
    assert raw_system.json() == {"error": "raw mode does not support template, system, or context"}
    unknown = httpx.post(ollama_server.url + "/api/tokenize", json={"model": OLLAMA_MODEL, "text": "hi"})
    assert unknown.status_code == 404 and unknown.text == "404 page not found"  # not in released Ollama
    bad_format = post(ollama_server, OLLAMA.request("Hi", 2, format="yaml"))
    assert bad_format.status_code == 500 and "invalid format" in bad_format.json()["error"]
    bad_keep = post(ollama_server, OLLAMA.request("Hi", 2, keep_alive="10"))
    assert bad_keep.status_code == 400 and "duration" in bad_keep.json()["error"]


def test_json_mode_and_the_templated_prompt(ollama_server: Any, llama: Any) -> None:
    data = post(ollama_server, OLLAMA.request("Give me a JSON object about Ann:", 24, format="json", temperature=0)).json()
    assert data["response"].startswith("{")
    templated = OLLAMA.request("Say hi.", 4, raw=False, system="You are brief.")
    answer = post(ollama_server, templated).json()
    assert answer["prompt_eval_count"] > len(tokens(llama, "Say hi.")) and answer["context"]  # template applied; context kept


def test_fault_switch_speaks_ollamas_error_shape(ollama_server: Any) -> None:
    ollama_server.inject("http_500")
    failed = post(ollama_server, OLLAMA.request("Hi", 2))
    assert failed.status_code == 500 and "injected fault" in failed.json()["error"]
    ollama_server.inject("http_503")
    busy = post(ollama_server, OLLAMA.request("Hi", 2))
    assert busy.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    ollama_server.inject("empty")
    empty = post(ollama_server, OLLAMA.request("Hi", 2)).json()
    assert empty["response"] == "" and "eval_count" not in empty  # omitempty
    body = OLLAMA.request("Hello", 6, ("literal", "QQQQ"), temperature=0)
    assert post(ollama_server, body).json()["response"] == '"QQQQ"'
    ollama_server.inject("ignore_constraint")
    assert post(ollama_server, body).json()["response"] != '"QQQQ"'
