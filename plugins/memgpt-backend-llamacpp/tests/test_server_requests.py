"""The exact requests ``LlamaServerBackend`` sends to llama-server, and how it reads the answers
(pytest-httpx); behaviour against the real server is in test_server_real.py."""

from __future__ import annotations

import json
import logging

import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_llamacpp.server import LlamaServerBackend

URL = "http://127.0.0.1:9"

REPLY = {
    "content": "Hello",
    "stop": True,
    "stop_type": "word",
    "stopping_word": "<|im_end|>",
    "tokens_predicted": 2,
    "tokens_evaluated": 30,
    "tokens_cached": 32,
    "truncated": False,
    "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "timings": {"cache_n": 26, "prompt_n": 4, "predicted_n": 2},
}

EMPTY = {**REPLY, "content": "", "tokens_predicted": 0, "stop_type": "eos"}


def backend(**settings: object) -> LlamaServerBackend:
    return LlamaServerBackend(BackendSettings(endpoint=URL, options={"backoff": 0.0}, **settings))  # type: ignore[arg-type]


def sent(httpx_mock: HTTPXMock) -> dict:
    return json.loads(httpx_mock.get_requests()[-1].content)


def test_completion_body_has_every_field_under_its_llama_server_name(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", method="POST", json=REPLY)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    backend().complete(
        CompletionRequest(prompt="<|im_start|>user\nhi", stop=("<|im_end|>", "\nUSER:"), max_tokens=77, sampling=sampling)
    )
    assert sent(httpx_mock) == {
        "prompt": "<|im_start|>user\nhi",
        "n_predict": 77,
        "stop": ["<|im_end|>", "\nUSER:"],
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.1,
        "repeat_penalty": 1.2,
        "cache_prompt": True,
        "seed": 5,
    }


def test_gbnf_is_preferred_and_sent_as_grammar(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json={**REPLY, "content": '{"answer": "yes", "confident": true}'})
    completion = backend().complete(
        CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA))
    )
    body = sent(httpx_mock)
    assert body["grammar"] == ANSWER_GBNF and "json_schema" not in body and "seed" not in body
    assert completion.constrained_by == "gbnf"


def test_a_json_schema_alone_is_sent_as_json_schema(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json={**REPLY, "content": '{"answer": "no", "confident": false}'})
    completion = backend().complete(CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA)))
    body = sent(httpx_mock)
    assert body["json_schema"] == ANSWER_SCHEMA and "grammar" not in body
    assert completion.constrained_by == "json_schema"


def test_each_request_gets_a_fresh_body_nothing_leaks_from_the_last(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json=REPLY, is_reusable=True)
    b = backend()
    b.complete(
        CompletionRequest(prompt="one", stop=("A",), constraint=Constraint(gbnf=ANSWER_GBNF), sampling=SamplingParams(seed=3))
    )
    b.complete(CompletionRequest(prompt="two"))
    first, second = (json.loads(r.content) for r in httpx_mock.get_requests())
    assert "grammar" in first and first["stop"] == ["A"] and first["seed"] == 3
    assert "grammar" not in second and second["stop"] == [] and "seed" not in second and second["prompt"] == "two"


def test_usage_reads_cache_and_evaluated_prompt_tokens(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json=REPLY)
    completion = backend().complete(CompletionRequest(prompt="p"))
    assert completion.usage.model_dump() == {
        "prompt_tokens": 30,
        "completion_tokens": 2,
        "cached_tokens": 26,
        "evaluated_tokens": 4,
        "exact": True,
    }
    assert completion.finish_reason == "stop" and completion.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert completion.seconds is not None and completion.seconds >= 0


@pytest.mark.parametrize(
    ("fields", "finish"),
    [({"stop_type": "limit"}, "length"), ({"stop_type": "eos"}, "stop"), ({"stop_type": None, "stopped_limit": True}, "length")],
)
def test_finish_reason_from_stop_type(httpx_mock: HTTPXMock, fields: dict, finish: str) -> None:
    reply = {k: v for k, v in {**REPLY, **fields}.items() if v is not None}
    httpx_mock.add_response(url=f"{URL}/completion", json=reply)
    assert backend().complete(CompletionRequest(prompt="p")).finish_reason == finish


def test_output_that_breaks_the_constraint_is_marked_unconstrained_and_warned_once(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json={**REPLY, "content": "Sure! The answer is yes."}, is_reusable=True)
    b = backend()
    request = CompletionRequest(prompt="p", constraint=Constraint(json_schema=ANSWER_SCHEMA))
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        first, second = b.complete(request), b.complete(request)
    assert first.constrained_by is None and second.constrained_by is None
    assert b.ignored_constraints == 2
    warnings = [r for r in caplog.records if "ignored the json_schema constraint" in r.getMessage()]
    assert len(warnings) == 1 and URL in warnings[0].getMessage()


def test_json_that_misses_a_required_property_fails_closed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/completion", json={**REPLY, "content": '{"answer": "maybe"}'})
    completion = backend().complete(
        CompletionRequest(prompt="p", constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA))
    )
    assert completion.constrained_by is None


def test_tokenize_body_and_count_cache(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/tokenize", method="POST", json={"tokens": [1, 2, 3]})
    b = backend()
    assert b.count_tokens("<|im_start|>hi") == 3
    assert b.count_tokens("<|im_start|>hi") == 3  # second count: from the cache, no request
    assert len(httpx_mock.get_requests()) == 1
    assert sent(httpx_mock) == {"content": "<|im_start|>hi", "add_special": False, "parse_special": True}


def test_check_reads_props(httpx_mock: HTTPXMock) -> None:
    props = {
        "default_generation_settings": {"n_ctx": 4096, "params": {}},
        "total_slots": 1,
        "model_alias": "",
        "model_path": "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}",
    }
    httpx_mock.add_response(url=f"{URL}/props", method="GET", json=props, is_reusable=True)
    b = backend()
    status = b.check()
    assert (status.ok, status.model, status.context_window) == (True, "SmolLM2-135M-Instruct.Q4_1.gguf", 4096)
    assert status.line() == f"✓ {URL}: serving SmolLM2-135M-Instruct.Q4_1.gguf, context 4096 tokens"
    assert b.context_window() == 4096
    assert b.chat_template() == props["chat_template"]


def test_props_without_n_ctx_is_a_status_without_context(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/props", json={"model_path": "m.gguf"})
    status = backend(context_window=2048).check()
    assert status.ok and status.context_window is None


def test_endpoint_is_normalised() -> None:
    assert backend().endpoint == URL
    assert LlamaServerBackend(BackendSettings(endpoint="localhost:8080/v1/")).endpoint == "http://localhost:8080"
    assert LlamaServerBackend(BackendSettings()).endpoint == "http://localhost:8080"


def test_a_bad_endpoint_is_a_backend_error() -> None:
    from memgpt.errors import BackendError

    with pytest.raises(BackendError, match="not an http"):
        LlamaServerBackend(BackendSettings(endpoint="ftp://models.example"))


class TestLlamaServerFaults(HTTPFaultContract):
    backend_class = LlamaServerBackend
    reply = REPLY
    empty_reply = EMPTY


def test_the_default_endpoint_falls_back_to_the_next_default_port(httpx_mock: HTTPXMock) -> None:
    import httpx

    httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"), url="http://localhost:8080/props")
    httpx_mock.add_response(
        url="http://localhost:9931/props", json={"model_path": "m.gguf", "default_generation_settings": {"n_ctx": 2048}}
    )
    httpx_mock.add_response(url="http://localhost:9931/completion", json=REPLY)
    b = LlamaServerBackend(BackendSettings(retries=0))
    status = b.check()
    assert status.ok and status.endpoint == "http://localhost:9931" and status.context_window == 2048
    assert b.complete(CompletionRequest(prompt="p")).text == "Hello"


def test_a_configured_endpoint_never_falls_back(httpx_mock: HTTPXMock) -> None:
    import httpx

    httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"), url="http://localhost:8081/props")
    assert not LlamaServerBackend(BackendSettings(endpoint="http://localhost:8081", retries=0)).check().ok


def test_when_neither_default_port_answers_the_error_names_the_first(httpx_mock: HTTPXMock) -> None:
    import httpx

    httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"), is_reusable=True)
    status = LlamaServerBackend(BackendSettings(retries=0)).check()
    assert not status.ok and "localhost:8080" in status.detail and status.endpoint == "http://localhost:8080"
