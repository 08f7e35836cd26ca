"""The exact requests ``VLLMBackend`` sends and how it reads vLLM's answers (pytest-httpx)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_vllm.backend import VLLMBackend

URL = "http://127.0.0.1:9"
REPLY = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "choices": [{"index": 0, "text": "Hello", "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
    "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42, "prompt_tokens_details": {"cached_tokens": 32}},
}
EMPTY = {**REPLY, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
MODELS = {"object": "list", "data": [{"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "object": "model", "max_model_len": 8192}]}


def backend(**settings: Any) -> VLLMBackend:
    return VLLMBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0}, **settings))


def probes(httpx_mock: HTTPXMock, version: str = "0.13.0") -> None:
    httpx_mock.add_response(url=f"{URL}/v1/models", json=MODELS, is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/version", json={"version": version}, is_optional=True, is_reusable=True)


def completion_body(httpx_mock: HTTPXMock) -> dict:
    return json.loads(next(r for r in httpx_mock.get_requests() if r.url.path == "/v1/completions").content)


def test_completion_body_has_every_field_under_its_vllm_name(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/v1/completions", method="POST", json=REPLY)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    request = CompletionRequest(
        prompt="<|im_start|>user\nhi",
        stop=("<|im_end|>",),
        max_tokens=77,
        sampling=sampling,
        constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
    )
    completion = backend().complete(request)
    assert completion_body(httpx_mock) == {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "prompt": "<|im_start|>user\nhi",
        "max_tokens": 77,
        "stop": ["<|im_end|>"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.1,
        "repetition_penalty": 1.2,
        "seed": 5,
        "structured_outputs": {"grammar": ANSWER_GBNF},
    }
    assert completion.constrained_by is None  # "Hello" is not the JSON the schema asks for: fail closed


def test_a_gbnf_alone_is_sent_as_a_structured_outputs_grammar(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(
        url=f"{URL}/v1/completions",
        json={**REPLY, "choices": [{"text": '{"answer": "yes", "confident": false}', "finish_reason": "stop"}]},
    )
    completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF)))
    assert completion_body(httpx_mock)["structured_outputs"] == {"grammar": ANSWER_GBNF}
    assert completion.constrained_by == "gbnf"


def test_a_schema_alone_is_sent_as_structured_outputs_json(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(
        url=f"{URL}/v1/completions",
        json={**REPLY, "choices": [{"text": '{"answer": "no", "confident": true}', "finish_reason": "stop"}]},
    )
    completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA)))
    assert completion_body(httpx_mock)["structured_outputs"] == {"json": ANSWER_SCHEMA}
    assert completion.constrained_by == "json_schema"


@pytest.mark.parametrize("version", ["0.9.2", "0.11.2", "0.32.0"])
def test_the_removed_guided_fields_are_never_sent(httpx_mock: HTTPXMock, version: str) -> None:
    # vLLM ignores a field it does not know with HTTP 200: an old server generates unconstrained, and the
    # output check says so (fail closed) rather than trusting a field some version might read.
    probes(httpx_mock, version=version)
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY, is_reusable=True)
    b = backend()
    for constraint in (Constraint(json_schema=ANSWER_SCHEMA), Constraint(gbnf=ANSWER_GBNF)):
        assert b.complete(CompletionRequest(prompt="p", constraint=constraint)).constrained_by is None
    for request in httpx_mock.get_requests():
        assert request.url.path != "/version"
        if request.url.path == "/v1/completions":
            assert not [k for k in json.loads(request.content) if k.startswith("guided_")]
    assert b.ignored_constraints == 2


def test_configured_model_skips_the_model_list(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY)
    backend(model="my-served-name").complete(CompletionRequest(prompt="p"))
    assert completion_body(httpx_mock)["model"] == "my-served-name"
    assert [r.url.path for r in httpx_mock.get_requests()] == ["/v1/completions"]


def test_usage_reports_cached_prompt_tokens(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/v1/completions", json=REPLY)
    usage = backend().complete(CompletionRequest(prompt="p")).usage
    assert usage.model_dump() == {
        "prompt_tokens": 40,
        "completion_tokens": 2,
        "cached_tokens": 32,
        "evaluated_tokens": 8,
        "exact": True,
    }


def test_usage_without_prompt_token_details_leaves_cached_unknown(httpx_mock: HTTPXMock) -> None:
    # vLLM's default (no --enable-prompt-tokens-details): "prompt_tokens_details": null. Unknown is not 0.
    probes(httpx_mock)
    httpx_mock.add_response(
        url=f"{URL}/v1/completions",
        json={**REPLY, "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42, "prompt_tokens_details": None}},
    )
    usage = backend().complete(CompletionRequest(prompt="p")).usage
    assert usage.model_dump() == {
        "prompt_tokens": 40,
        "completion_tokens": 2,
        "cached_tokens": None,
        "evaluated_tokens": None,
        "exact": True,
    }


def test_tokenize_body_and_count(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(
        url=f"{URL}/tokenize", method="POST", json={"tokens": [1, 2, 3, 4], "count": 4, "max_model_len": 8192}
    )
    b = backend()
    assert [b.count_tokens("some text"), b.count_tokens("some text")] == [4, 4]
    tokenize = [json.loads(r.content) for r in httpx_mock.get_requests() if r.url.path == "/tokenize"]
    assert tokenize == [{"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "prompt": "some text", "add_special_tokens": False}]


def test_check_reads_max_model_len(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    status = backend().check()
    assert (status.ok, status.model, status.context_window) == (True, "HuggingFaceTB/SmolLM2-135M-Instruct", 8192)


def test_check_with_no_model_served(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/models", json={"object": "list", "data": []})
    status = backend().check()
    assert not status.ok and "lists no model" in status.detail


class TestVLLMFaults(HTTPFaultContract):
    backend_class = VLLMBackend
    reply = REPLY
    empty_reply = EMPTY

    def prepare(self, httpx_mock: HTTPXMock) -> None:
        probes(httpx_mock)
