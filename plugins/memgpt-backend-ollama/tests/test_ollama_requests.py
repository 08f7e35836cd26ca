"""The exact requests ``OllamaBackend`` sends and how it reads Ollama's answers (pytest-httpx)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.errors import BackendError, BackendHTTPError
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_ollama.backend import OllamaBackend

URL = "http://127.0.0.1:9"
MODEL = "smollm2:135m"
REPLY = {
    "model": MODEL,
    "created_at": "2026-08-21T10:00:00Z",
    "response": "Hello",
    "done": True,
    "done_reason": "stop",
    "total_duration": 5043500667,
    "load_duration": 5025959,
    "prompt_eval_count": 40,
    "prompt_eval_duration": 325953000,
    "eval_count": 2,
    "eval_duration": 4709213000,
}
EMPTY = {k: v for k, v in REPLY.items() if k != "eval_count"} | {"response": ""}  # omitempty: no eval_count
TAGS = {"models": [{"name": MODEL, "model": MODEL, "details": {"family": "llama"}}]}
SHOW = {
    "parameters": 'stop                           "<|im_end|>"',
    "template": "{{ .Prompt }}",
    "details": {"family": "llama"},
    "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
    "capabilities": ["completion"],
}
NO_TOKENIZER: dict[str, Any] = {"status_code": 404, "text": "404 page not found"}


def backend(**settings: Any) -> OllamaBackend:
    return OllamaBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0, **settings.pop("options", {})}, **settings))


def probes(httpx_mock: HTTPXMock, *, ps: dict[str, Any] | None = None, show: dict[str, Any] | None = None) -> None:
    httpx_mock.add_response(url=f"{URL}/api/ps", json=ps or {"models": []}, is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/api/tags", json=TAGS, is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/api/show", json=show or SHOW, is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/api/tokenize", is_optional=True, is_reusable=True, **NO_TOKENIZER)


def sent(httpx_mock: HTTPXMock, path: str = "/api/generate") -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in httpx_mock.get_requests() if r.url.path == path]


def reply(httpx_mock: HTTPXMock, **fields: Any) -> None:
    body = {k: v for k, v in (REPLY | fields).items() if v is not None}  # None: the field is left out
    httpx_mock.add_response(url=f"{URL}/api/generate", method="POST", json=body)


def test_generate_body_is_raw_unstreamed_with_options_and_the_schema_in_format(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    reply(httpx_mock)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    request = CompletionRequest(
        prompt="<|im_start|>user\nhi",
        stop=("<|im_end|>",),
        max_tokens=77,
        sampling=sampling,
        constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
    )
    completion = backend().complete(request)
    assert sent(httpx_mock) == [
        {
            "model": MODEL,
            "prompt": "<|im_start|>user\nhi",
            "raw": True,
            "stream": False,
            "options": {
                "num_predict": 77,
                "temperature": 0.3,
                "top_k": 20,
                "top_p": 0.9,
                "min_p": 0.1,
                "repeat_penalty": 1.2,
                "stop": ["<|im_end|>"],
                "num_ctx": 4096,  # Ollama's default, within the model's trained 8192
                "seed": 5,
            },
            "keep_alive": "30m",
            "truncate": False,
            "format": ANSWER_SCHEMA,
        }
    ]
    assert completion.constrained_by is None  # "Hello" is not the JSON the schema asks for: fail closed


def test_a_matching_answer_is_constrained_by_the_schema(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    reply(httpx_mock, response='{"answer": "yes", "confident": false}')
    completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA)))
    assert completion.constrained_by == "json_schema"
    assert sent(httpx_mock)[0]["format"] == ANSWER_SCHEMA


def test_a_gbnf_alone_is_not_sent_and_says_so(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    probes(httpx_mock)
    reply(httpx_mock)
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF)))
    body = sent(httpx_mock)[0]
    assert "format" not in body and "grammar" not in body and "grammar" not in body["options"]
    assert completion.constrained_by is None
    assert any("cannot enforce a gbnf constraint" in r.getMessage() for r in caplog.records)


def test_no_seed_no_seed_option_and_empty_stop_is_still_sent(httpx_mock: HTTPXMock) -> None:
    # An empty `stop` overrides the Modelfile's own stop parameters, which apply in raw mode too.
    probes(httpx_mock)
    reply(httpx_mock)
    backend().complete(CompletionRequest(prompt="p", max_tokens=3))
    options = sent(httpx_mock)[0]["options"]
    assert "seed" not in options and options["stop"] == []


def test_usage_is_exact_from_the_counts(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    reply(httpx_mock)
    usage = backend().complete(CompletionRequest(prompt="p")).usage
    assert usage.model_dump() == {
        "prompt_tokens": 40,
        "completion_tokens": 2,
        "cached_tokens": None,  # Ollama does not say how much of the prompt came from its cache
        "evaluated_tokens": None,
        "exact": True,
    }


def test_a_missing_prompt_eval_count_is_unknown_not_zero(httpx_mock: HTTPXMock) -> None:
    # Ollama before 0.1.49 left prompt_eval_count out when the prompt was cached (ollama/ollama#2068), and
    # Go's omitempty leaves out any 0: an estimate, marked inexact, never a 0 prompt.
    probes(httpx_mock)
    reply(httpx_mock, prompt_eval_count=None)
    prompt = "The quick brown fox jumps over the lazy dog. " * 4
    usage = backend().complete(CompletionRequest(prompt=prompt)).usage
    assert usage.prompt_tokens > 0 and not usage.exact
    assert usage.cached_tokens is None and usage.evaluated_tokens is None
    assert usage.completion_tokens == 2


def test_cached_prompt_tokens_are_read_when_the_server_reports_them(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    reply(httpx_mock, prompt_eval_cached_count=32)
    usage = backend().complete(CompletionRequest(prompt="p")).usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.evaluated_tokens, usage.exact) == (40, 32, 8, True)


@pytest.mark.parametrize(
    ("fields", "finish"),
    [
        ({"done_reason": "stop"}, "stop"),
        ({"done_reason": "length"}, "length"),
        ({"done_reason": None, "eval_count": 16}, "length"),  # builds before done_reason: the budget was used up
        ({"done_reason": None, "eval_count": 5}, "stop"),
    ],
)
def test_done_reason_is_the_finish_reason(httpx_mock: HTTPXMock, fields: dict[str, Any], finish: str) -> None:
    probes(httpx_mock)
    reply(httpx_mock, **fields)
    assert backend().complete(CompletionRequest(prompt="p", max_tokens=16)).finish_reason == finish


def test_the_model_is_the_loaded_one_then_the_first_pulled(httpx_mock: HTTPXMock) -> None:
    loaded = {"models": [{"name": "qwen3:0.6b", "model": "qwen3:0.6b", "context_length": 8192}]}
    probes(httpx_mock, ps=loaded)
    reply(httpx_mock)
    b = backend()
    assert b.model() == "qwen3:0.6b"
    assert b.check().context_window == 8192  # what it is loaded with: no reload for another num_ctx
    b.complete(CompletionRequest(prompt="p"))
    assert sent(httpx_mock)[0]["options"]["num_ctx"] == 8192
    assert backend(model="mine:7b").model() == "mine:7b"


def test_a_configured_model_and_context_skip_the_listing(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/show", json=SHOW)
    httpx_mock.add_response(url=f"{URL}/api/tokenize", **NO_TOKENIZER)
    reply(httpx_mock)
    backend(model="llama3.2:1b", context_window=2048).complete(CompletionRequest(prompt="p"))
    assert sent(httpx_mock)[0]["options"]["num_ctx"] == 2048 and sent(httpx_mock)[0]["model"] == "llama3.2:1b"
    # the probe: the model's details, and once whether the server can tokenize
    assert [r.url.path for r in httpx_mock.get_requests()] == ["/api/show", "/api/tokenize", "/api/generate"]


def test_context_from_the_modelfile_num_ctx(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, show={**SHOW, "parameters": 'num_ctx                        6144\nstop                           "x"'})
    assert backend().check().context_window == 6144


def test_context_is_ollamas_default_within_the_trained_length(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, show={**SHOW, "model_info": {"general.architecture": "gemma3", "gemma3.context_length": 2048}})
    status = backend().check()
    assert (status.ok, status.model, status.context_window) == (True, MODEL, 2048)


def test_no_model_pulled_is_a_clear_failure(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/ps", json={"models": []})
    httpx_mock.add_response(url=f"{URL}/api/tags", json={"models": []})
    status = backend().check()
    assert not status.ok and "ollama pull" in status.detail


def test_a_model_not_pulled_is_one_line_naming_ollama_pull(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{URL}/api/show", status_code=404, json={"error": "model 'llama3.2' not found"}, is_reusable=True
    )
    httpx_mock.add_response(url=f"{URL}/api/generate", status_code=404, json={"error": "model 'llama3.2' not found"})
    b = backend(model="llama3.2")
    with pytest.raises(BackendHTTPError) as caught:
        b.complete(CompletionRequest(prompt="p"))
    message = str(caught.value)
    assert "`ollama pull llama3.2`" in message and "\n" not in message and caught.value.status_code == 404
    status = b.check()
    assert not status.ok and "ollama pull llama3.2" in status.detail


def test_a_404_of_another_kind_is_not_blamed_on_the_model(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/show", status_code=404, text="404 page not found")
    httpx_mock.add_response(url=f"{URL}/api/generate", status_code=404, text="404 page not found")
    with pytest.raises(BackendHTTPError) as caught:
        backend(model="m").complete(CompletionRequest(prompt="p"))
    assert "ollama pull" not in str(caught.value) and "does not exist there" in str(caught.value)


def test_without_api_tokenize_counts_are_estimates_that_learn_the_ratio(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    reply(httpx_mock, prompt_eval_count=50)
    b = backend()
    text = "x" * 350
    assert b.count_tokens(text) == 100  # 3.5 characters per token until measured
    assert not b.capabilities.tokenizer and b.has_tokenizer is False
    b.complete(CompletionRequest(prompt="y" * 100))  # 100 characters were 50 tokens
    assert b.count_tokens(text) == 175
    assert len(sent(httpx_mock, "/api/tokenize")) == 1  # asked once


def test_api_tokenize_is_used_when_present(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/tokenize", json={"model": MODEL, "tokens": [1, 2, 3, 4]}, is_reusable=True)
    b = backend(model=MODEL)
    assert [b.count_tokens("some text"), b.count_tokens("some text")] == [4, 4]
    assert b.capabilities.tokenizer and b.has_tokenizer
    assert sent(httpx_mock, "/api/tokenize") == [{"model": MODEL, "text": "some text"}]


@pytest.mark.parametrize(("env", "sent_keep_alive"), [(None, "30m"), ("-1", -1), ("1h", "1h"), ("90.5", 90.5), ("", None)])
def test_keep_alive_and_endpoint_suffix(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, env: str | None, sent_keep_alive: Any
) -> None:
    if env is not None:
        monkeypatch.setenv("MEMGPT_OLLAMA_KEEP_ALIVE", env)
    httpx_mock.add_response(url=f"{URL}/api/generate", json=REPLY)
    b = OllamaBackend(BackendSettings(endpoint=URL + "/api/", model=MODEL, context_window=4096))
    b._context = 4096  # no probe
    b.complete(CompletionRequest(prompt="p"))
    assert b.endpoint == URL and sent(httpx_mock)[0].get("keep_alive") == sent_keep_alive


def test_an_error_in_a_200_answer_is_an_error(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/api/generate", json={"error": "an error was encountered while running the model"})
    with pytest.raises(BackendError, match="an error was encountered"):
        backend(retries=0).complete(CompletionRequest(prompt="p"))


class TestOllamaFaults(HTTPFaultContract):
    backend_class = OllamaBackend
    reply = REPLY
    empty_reply = EMPTY

    def prepare(self, httpx_mock: HTTPXMock) -> None:
        probes(httpx_mock)
