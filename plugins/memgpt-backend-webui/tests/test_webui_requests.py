"""The exact requests ``WebUIBackend`` sends and how it reads text-generation-webui's answers (pytest-httpx)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_webui.backend import WebUIBackend

URL = "http://127.0.0.1:9"
REPLY = {
    "id": "conv-1",
    "object": "text_completion",
    "created": 1,
    "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "choices": [{"index": 0, "finish_reason": "stop", "text": "Hello", "logprobs": None}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}
EMPTY = {**REPLY, "choices": [{"index": 0, "finish_reason": "stop", "text": ""}]}


def backend(**settings: Any) -> WebUIBackend:
    return WebUIBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0}, **settings))


def sent(httpx_mock: HTTPXMock) -> dict:
    return json.loads(httpx_mock.get_requests()[-1].content)


def test_completion_body_has_every_field_under_its_webui_name(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", method="POST", json=REPLY)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    request = CompletionRequest(prompt="<|im_start|>user\nhi", stop=("<|im_end|>",), max_tokens=77, sampling=sampling)
    backend(model="SmolLM2", context_window=8192).complete(request)
    assert sent(httpx_mock) == {
        "prompt": "<|im_start|>user\nhi",
        "max_tokens": 77,
        "stop": ["<|im_end|>"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.1,
        "repetition_penalty": 1.2,
        "model": "SmolLM2",
        "truncation_length": 8192,
        "seed": 5,
    }


def test_gbnf_is_sent_as_grammar_string(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{URL}/v1/completions",
        json={**REPLY, "choices": [{"text": '{"answer": "no", "confident": true}', "finish_reason": "stop"}]},
    )
    completion = backend().complete(
        CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA))
    )
    body = sent(httpx_mock)
    assert body["grammar_string"] == ANSWER_GBNF and "response_format" not in body and "truncation_length" not in body
    assert completion.constrained_by == "gbnf"


def test_a_json_schema_alone_is_not_sent(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY)
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA)))
    assert "grammar_string" not in sent(httpx_mock) and completion.constrained_by is None
    assert any("cannot enforce" in r.getMessage() for r in caplog.records)


def test_usage_and_finish_reason_come_from_the_answer(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", json={**REPLY, "choices": [{"text": "Hel", "finish_reason": "length"}]})
    completion = backend().complete(CompletionRequest(prompt="p"))
    assert completion.finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.exact) == (12, 2, True)


def test_answer_without_usage_is_estimated_and_marked_inexact(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", json={"choices": [{"text": "Hello there", "finish_reason": "stop"}]})
    usage = backend().complete(CompletionRequest(prompt="a prompt of some length")).usage
    assert not usage.exact and usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_count_tokens_uses_internal_token_count_once_per_text(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/internal/token-count", method="POST", json={"length": 9})
    b = backend()
    assert [b.count_tokens("some text"), b.count_tokens("some text")] == [9, 9]
    assert sent(httpx_mock) == {"text": "some text"} and len(httpx_mock.get_requests()) == 1


def test_check_reads_model_info_and_the_configured_context(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{URL}/v1/internal/model/info", json={"model_name": "SmolLM2-135M-Instruct.Q4_1.gguf", "lora_names": []}
    )
    status = backend(context_window=4096).check()
    assert (status.ok, status.model, status.context_window) == (True, "SmolLM2-135M-Instruct.Q4_1.gguf", 4096)


def test_check_without_a_loaded_model_says_what_to_do(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/internal/model/info", json={"model_name": "None", "lora_names": []})
    status = backend().check()
    assert not status.ok and "Model tab" in status.detail


class TestWebUIFaults(HTTPFaultContract):
    backend_class = WebUIBackend
    reply = REPLY
    empty_reply = EMPTY
