"""The exact requests ``KoboldCppBackend`` sends and how it reads koboldcpp's answers (pytest-httpx)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_koboldcpp.backend import KoboldCppBackend

URL = "http://127.0.0.1:9"
REPLY = {"results": [{"text": "Hello", "finish_reason": "stop"}]}
EMPTY = {"results": [{"text": "", "finish_reason": "stop"}]}


def backend(**settings: Any) -> KoboldCppBackend:
    return KoboldCppBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0}, **settings))


def probes(httpx_mock: HTTPXMock, context: int = 4096, tokens: int = 7) -> None:
    """koboldcpp's side endpoints, answered whenever (and however often) the backend asks."""
    httpx_mock.add_response(
        url=f"{URL}/api/extra/true_max_context_length", json={"value": context}, is_optional=True, is_reusable=True
    )
    httpx_mock.add_response(
        url=f"{URL}/api/v1/model", json={"result": "koboldcpp/SmolLM2-135M-Instruct"}, is_optional=True, is_reusable=True
    )
    httpx_mock.add_response(
        url=f"{URL}/api/extra/tokencount", json={"value": tokens, "ids": list(range(tokens))}, is_optional=True, is_reusable=True
    )


def generate_body(httpx_mock: HTTPXMock) -> dict:
    return json.loads(next(r for r in httpx_mock.get_requests() if r.url.path == "/api/v1/generate").content)


def test_generate_body_has_every_field_under_its_koboldcpp_name(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, context=8192)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", method="POST", json=REPLY)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    backend().complete(CompletionRequest(prompt="### User: hi", stop=("### User:", "</s>"), max_tokens=77, sampling=sampling))
    assert generate_body(httpx_mock) == {
        "prompt": "### User: hi",
        "max_length": 77,
        "max_context_length": 8192,
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.1,
        "rep_pen": 1.2,
        "stop_sequence": ["### User:", "</s>"],
        "sampler_seed": 5,
    }


def test_gbnf_is_sent_as_grammar(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json={"results": [{"text": '{"answer": "yes", "confident": true}'}]})
    completion = backend().complete(
        CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA))
    )
    assert generate_body(httpx_mock)["grammar"] == ANSWER_GBNF
    assert completion.constrained_by == "gbnf"


def test_a_json_schema_alone_cannot_be_sent_and_is_said_so(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json=REPLY)
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA)))
    assert "grammar" not in generate_body(httpx_mock)
    assert completion.constrained_by is None
    assert any("cannot enforce a json_schema constraint" in r.getMessage() for r in caplog.records)


def test_usage_is_counted_with_koboldcpps_tokenizer_and_marked_inexact(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, tokens=3)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json=REPLY)
    completion = backend().complete(CompletionRequest(prompt="a prompt", max_tokens=10))
    assert completion.usage.model_dump() == {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "cached_tokens": 0,
        "evaluated_tokens": None,
        "exact": False,
    }
    counted = [json.loads(r.content) for r in httpx_mock.get_requests() if r.url.path == "/api/extra/tokencount"]
    assert counted == [{"prompt": "a prompt", "special": False}, {"prompt": "Hello", "special": False}]


@pytest.mark.parametrize(
    ("result", "finish"), [({"finish_reason": "length"}, "length"), ({"finish_reason": "eos"}, "stop"), ({}, "length")]
)
def test_finish_reason(httpx_mock: HTTPXMock, result: dict, finish: str) -> None:
    probes(httpx_mock, tokens=4)  # without finish_reason: 4 tokens of a 4-token budget means it was cut
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json={"results": [{"text": "Hello", **result}]})
    assert backend().complete(CompletionRequest(prompt="p", max_tokens=4)).finish_reason == finish


def test_count_tokens_asks_tokencount_once_per_text(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, tokens=12)
    b = backend()
    assert [b.count_tokens("some text"), b.count_tokens("some text")] == [12, 12]
    assert len(httpx_mock.get_requests()) == 1


def test_check_reads_model_and_true_max_context_length(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, context=6144)
    status = backend().check()
    assert (status.ok, status.model, status.context_window) == (True, "SmolLM2-135M-Instruct", 6144)


def test_endpoint_with_api_path_is_normalised() -> None:
    assert KoboldCppBackend(BackendSettings(endpoint="http://localhost:5001/api/v1/")).endpoint == "http://localhost:5001"
    assert KoboldCppBackend(BackendSettings()).endpoint == "http://localhost:5001"


class TestKoboldCppFaults(HTTPFaultContract):
    backend_class = KoboldCppBackend
    reply = REPLY
    empty_reply = EMPTY

    def prepare(self, httpx_mock: HTTPXMock) -> None:
        probes(httpx_mock)


def test_a_stop_string_hit_is_cut_and_reported_as_stop_though_koboldcpp_says_length(httpx_mock: HTTPXMock) -> None:
    """Recorded from koboldcpp 1.76 (recordings/stop.json): the stop string stays in the text (no trim_stop)
    and finish_reason is "length"; the backend cuts at the first stop string and reports "stop"."""
    probes(httpx_mock, tokens=4)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json={"results": [{"text": " 4, 5, 6, 7", "finish_reason": "length"}]})
    completion = backend().complete(CompletionRequest(prompt="1, 2, 3,", max_tokens=24, stop=(" 9", " 7")))
    assert "trim_stop" not in generate_body(httpx_mock)
    assert (completion.text, completion.finish_reason) == (" 4, 5, 6,", "stop")


def test_length_without_a_stop_string_stays_length(httpx_mock: HTTPXMock) -> None:
    probes(httpx_mock, tokens=4)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json={"results": [{"text": " 4, 5", "finish_reason": "length"}]})
    completion = backend().complete(CompletionRequest(prompt="1, 2, 3,", max_tokens=4, stop=(" 7",)))
    assert (completion.text, completion.finish_reason) == (" 4, 5", "length")


@pytest.mark.parametrize("key", [None, "wrong"])
def test_check_fails_when_koboldcpp_hides_the_model_behind_its_password(httpx_mock: HTTPXMock, key: str | None) -> None:
    """koboldcpp --password answers GET /api/v1/model 200 "koboldcpp/protected-model" to a wrong or missing key
    (recordings/api_key.json): that is not a healthy server."""
    httpx_mock.add_response(url=f"{URL}/api/extra/true_max_context_length", json={"value": 4096})
    httpx_mock.add_response(url=f"{URL}/api/v1/model", json={"result": "koboldcpp/protected-model"})
    status = backend(api_key=SecretStr(key) if key else None).check()
    assert not status.ok and "--password" in status.detail and "MEMGPT_API_KEY_KOBOLDCPP" in status.detail
    assert ("wrong" if key else "no API key") in status.detail


def test_an_ignored_grammar_says_koboldcpp_may_need_a_restart(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture) -> None:
    probes(httpx_mock)
    httpx_mock.add_response(url=f"{URL}/api/v1/generate", json={"results": [{"text": "Sure!", "finish_reason": "stop"}]})
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend().complete(
            CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA))
        )
    assert completion.constrained_by is None
    assert any("until it is restarted" in r.getMessage() for r in caplog.records)
