"""The exact requests ``LMStudioBackend`` sends and how it reads LM Studio's answers (pytest-httpx)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_lmstudio.backend import LMStudioBackend

URL = "http://127.0.0.1:9"
REPLY = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "smollm2-135m-instruct",
    "choices": [{"index": 0, "text": "Hello", "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}
EMPTY = {**REPLY, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
MODELS = {
    "object": "list",
    "data": [
        {"id": "text-embedding-nomic", "type": "embeddings", "state": "not-loaded", "max_context_length": 2048},
        {"id": "qwen2.5-7b-instruct", "type": "llm", "state": "not-loaded", "max_context_length": 32768},
        {
            "id": "smollm2-135m-instruct",
            "type": "llm",
            "state": "loaded",
            "max_context_length": 8192,
            "loaded_context_length": 4096,
        },
    ],
}


def backend(**settings: Any) -> LMStudioBackend:
    return LMStudioBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0}, **settings))


def completion_body(httpx_mock: HTTPXMock) -> dict:
    return json.loads(next(r for r in httpx_mock.get_requests() if r.url.path == "/v1/completions").content)


def test_completion_body_has_every_field_under_its_lmstudio_name(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", method="POST", json=REPLY)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    request = CompletionRequest(
        prompt="<|im_start|>user\nhi",
        stop=("<|im_end|>",),
        max_tokens=77,
        sampling=sampling,
        constraint=Constraint(json_schema=ANSWER_SCHEMA),
    )
    backend(model="smollm2-135m-instruct").complete(request)
    assert completion_body(httpx_mock) == {
        "prompt": "<|im_start|>user\nhi",
        "max_tokens": 77,
        "stop": ["<|im_end|>"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "repeat_penalty": 1.2,
        "model": "smollm2-135m-instruct",
        "seed": 5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "memgpt_output", "strict": True, "schema": ANSWER_SCHEMA},
        },
    }


def test_the_loaded_model_is_asked_for_when_none_is_configured(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/v0/models", json=MODELS)
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY, is_reusable=True)
    b = backend()
    b.complete(CompletionRequest(prompt="p"))
    b.complete(CompletionRequest(prompt="p"))  # the model list is read once
    assert completion_body(httpx_mock)["model"] == "smollm2-135m-instruct"


def test_a_gbnf_alone_is_not_sent(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY)
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend(model="m").complete(CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF)))
    assert "response_format" not in completion_body(httpx_mock) and completion.constrained_by is None
    assert any("cannot enforce a gbnf constraint" in r.getMessage() for r in caplog.records)


def test_token_estimate_is_corrected_from_usage(httpx_mock: HTTPXMock) -> None:
    prompt = "x" * 400
    httpx_mock.add_response(url=f"{URL}/v1/completions", json={**REPLY, "usage": {"prompt_tokens": 100, "completion_tokens": 2}})
    b = backend(model="m")
    before = b.count_tokens(prompt)
    b.complete(CompletionRequest(prompt=prompt))
    assert before != 100 and b.count_tokens(prompt) == 100 and b.count_tokens("x" * 40) == 10
    assert not b.capabilities.tokenizer


def test_check_reads_the_loaded_context_length(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/v0/models", json=MODELS)
    status = backend().check()
    assert (status.ok, status.model, status.context_window) == (True, "smollm2-135m-instruct", 4096)


def test_check_describes_the_configured_model(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/v0/models", json=MODELS)
    status = backend(model="qwen2.5-7b-instruct").check()
    assert (status.model, status.context_window) == ("qwen2.5-7b-instruct", 32768)


def test_check_with_nothing_loaded_says_what_to_do(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/v0/models", json={"data": MODELS["data"][:2]})
    status = backend().check()
    assert not status.ok and "lms load" in status.detail


def test_builds_without_rest_api_v0_fall_back_to_v1_models(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/api/v0/models", status_code=404, json={"error": "Unexpected endpoint or method."})
    httpx_mock.add_response(url=f"{URL}/v1/models", json={"object": "list", "data": [{"id": "smollm2", "object": "model"}]})
    status = backend().check()
    assert (status.ok, status.model, status.context_window) == (True, "smollm2", None)


class TestLMStudioFaults(HTTPFaultContract):
    backend_class = LMStudioBackend
    reply = REPLY
    empty_reply = EMPTY

    def prepare(self, httpx_mock: HTTPXMock) -> None:
        httpx_mock.add_response(url=f"{URL}/api/v0/models", json=MODELS, is_optional=True, is_reusable=True)
