"""The requests ``OpenAIBackend`` sends and how it reads the answers, against mocked servers (pytest-httpx).

``FakeServer`` answers like an OpenAI-compatible server that honours some constraint fields, rejects some
with 400 and ignores the rest; the tests check what the probe concludes from that, which field then carries
each constraint, how tokens are counted and where the context size comes from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, Completion, CompletionRequest, Constraint, SamplingParams
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, HTTPFaultContract
from memgpt_backend_openai import OPENAI
from memgpt_backend_openai.backend import PROBE_PROMPT, PROBE_TEXT, OpenAIBackend, _shows_probe, forget_servers

URL = "http://127.0.0.1:9"
ANSWER = '{"answer": "yes", "confident": true}'
CONSTRAINT = Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA)
FIELDS = ("grammar", "structured_outputs", "response_format", "json_schema")


def answer(text: str, finish: str = "stop", usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}
    return body


def models(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(entries or [{"id": "smollm2", "object": "model", "owned_by": "me"}])}


def field_of(body: dict[str, Any]) -> str | None:
    """The constraint field a request carries (``structured_outputs.grammar`` style), or None."""
    for name in FIELDS:
        if name in body:
            value = body[name]
            return f"{name}.{next(iter(value))}" if name == "structured_outputs" else name
    return None


class FakeServer:
    """An OpenAI-compatible server that honours ``honours``, answers 400 to ``rejects`` and ignores the rest;
    it has no ``/props``, and when ``bare`` no tokenizer endpoint either."""

    def __init__(
        self,
        httpx_mock: HTTPXMock,
        *,
        honours: frozenset[str] = frozenset(),
        rejects: frozenset[str] = frozenset(),
        bare: bool = True,
        **listing: Any,
    ):
        self.honours, self.rejects = set(honours), set(rejects)
        self.probes: list[str | None] = []
        self.completions: list[dict[str, Any]] = []
        httpx_mock.add_response(url=f"{URL}/v1/models", json=listing.get("listing", models()), is_reusable=True, is_optional=True)
        httpx_mock.add_callback(self.complete, url=f"{URL}/v1/completions", is_reusable=True, is_optional=True)
        # No /props, and (``bare``) no tokenizer: what a server outside llama.cpp and vLLM answers.
        for path in ("/props", *(("/tokenize", "/extras/tokenize/count") if bare else ())):
            httpx_mock.add_response(
                url=URL + path, status_code=404, json={"detail": "Not Found"}, is_reusable=True, is_optional=True
            )

    def complete(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        name = field_of(body)
        if name in self.rejects:
            return httpx.Response(400, json={"error": {"message": f"unknown field {name}"}})
        probe = body["prompt"] == PROBE_PROMPT
        (self.probes if probe else self.completions).append(name if probe else body)
        if name in self.honours:
            if probe:
                return httpx.Response(200, json=answer(PROBE_TEXT if name.endswith("grammar") else '{"q": "Zx7Qv"}'))
            return httpx.Response(200, json=answer(ANSWER))
        return httpx.Response(200, json=answer(" sunny and warm"))


@pytest.fixture(autouse=True)
def _probe_afresh() -> Iterator[None]:
    """Every test's mocked server lives at the same URL: forget what the last one was found to do."""
    forget_servers()
    yield
    forget_servers()


def backend(**settings: Any) -> OpenAIBackend:
    settings.setdefault("endpoint", URL)
    return OpenAIBackend(BackendSettings(options={"backoff": 0.0}, **settings))


def constrained(constraint: Constraint = CONSTRAINT) -> CompletionRequest:
    return CompletionRequest(prompt="Q?", max_tokens=32, constraint=constraint)


# -- the HTTP fault contract ---------------------------------------------------------------------------


class TestOpenAIHTTPFaults(HTTPFaultContract):
    backend_class = OpenAIBackend
    reply = answer("Hello")
    empty_reply = answer("")

    def prepare(self, httpx_mock: Any) -> None:
        httpx_mock.add_response(url=f"{self.endpoint}/v1/models", json=models(), is_reusable=True, is_optional=True)


# -- the endpoint and the completion body --------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [URL, URL + "/", URL + "/v1", URL + "/v1/", "127.0.0.1:9/v1"])
def test_the_endpoint_is_taken_with_or_without_v1(endpoint: str) -> None:
    assert backend(endpoint=endpoint).endpoint == URL


def test_an_unconstrained_body_is_the_openai_fields_with_the_listed_model(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock)
    sampling = SamplingParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.2, seed=5)
    backend().complete(CompletionRequest(prompt="<|im_start|>user\nhi", stop=("<|im_end|>",), max_tokens=77, sampling=sampling))
    assert server.probes == []  # nothing to constrain: nothing probed
    assert server.completions == [
        {
            "prompt": "<|im_start|>user\nhi",
            "max_tokens": 77,
            "stop": ["<|im_end|>"],
            "temperature": 0.3,
            "top_p": 0.9,
            "top_k": 20,
            "min_p": 0.1,
            "repeat_penalty": 1.2,
            "seed": 5,
            "model": "smollm2",
        }
    ]


def test_the_configured_model_and_vllm_penalty_name(httpx_mock: HTTPXMock) -> None:
    listing = models(
        {"id": "a", "owned_by": "vllm", "max_model_len": 2048}, {"id": "b", "owned_by": "vllm", "max_model_len": 8192}
    )
    server = FakeServer(httpx_mock, listing=listing)
    b = backend(model="b")
    b.complete(CompletionRequest(prompt="hi", max_tokens=4))
    body = server.completions[0]
    assert body["model"] == "b" and "repetition_penalty" in body and "repeat_penalty" not in body
    assert b.check().context_window == 8192  # the configured model's entry, not the first


# -- the constraint probe ------------------------------------------------------------------------------


def test_a_llama_cpp_style_server_gets_grammar_and_json_schema(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock, honours=frozenset({"grammar", "json_schema"}))
    b = backend()
    assert b.constraint_fields() == {"gbnf": "grammar", "json_schema": "json_schema"}
    assert server.probes == ["grammar", "response_format", "structured_outputs.json", "json_schema"]
    assert b.capabilities.constraints == ("gbnf", "json_schema")
    completion = b.complete(constrained())
    assert completion.constrained_by == "gbnf" and completion.text == ANSWER
    assert (
        server.completions[-1]["grammar"] == ANSWER_GBNF
        and field_of({k: v for k, v in server.completions[-1].items() if k != "grammar"}) is None
    )
    b.complete(constrained(Constraint(json_schema=ANSWER_SCHEMA)))
    assert server.completions[-1]["json_schema"] == ANSWER_SCHEMA


def test_a_vllm_style_server_gets_structured_outputs(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock, honours=frozenset({"structured_outputs.grammar", "structured_outputs.json"}))
    b = backend()
    assert b.constraint_fields() == {"gbnf": "structured_outputs.grammar", "json_schema": "structured_outputs.json"}
    assert server.probes == ["grammar", "structured_outputs.grammar", "response_format", "structured_outputs.json"]
    b.complete(constrained())
    assert server.completions[-1]["structured_outputs"] == {"grammar": ANSWER_GBNF}
    b.complete(constrained(Constraint(json_schema=ANSWER_SCHEMA)))
    assert server.completions[-1]["structured_outputs"] == {"json": ANSWER_SCHEMA}


def test_response_format_is_the_openai_json_schema_shape(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock, honours=frozenset({"response_format"}))
    b = backend()
    assert b.capabilities.constraints == ("json_schema",)
    assert b.complete(constrained()).constrained_by == "json_schema"
    assert server.completions[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "memgpt_output", "strict": True, "schema": ANSWER_SCHEMA},
    }


def test_a_field_rejected_with_400_is_not_honoured_and_the_probe_goes_on(httpx_mock: HTTPXMock) -> None:
    FakeServer(
        httpx_mock,
        honours=frozenset({"structured_outputs.grammar"}),
        rejects=frozenset({"grammar", "response_format", "json_schema"}),
    )
    b = backend()
    assert b.constraint_fields() == {"gbnf": "structured_outputs.grammar"}
    report = b.constraint_report()
    assert "grammar: rejected (HTTP 400)" in report and "structured_outputs.json: ignored (answered ' sunny and warm')" in report


def test_when_no_field_is_honoured_none_is_sent_and_the_completion_is_unconstrained(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer(httpx_mock, rejects=frozenset({"structured_outputs.grammar"}))
    b = backend()
    with caplog.at_level(logging.WARNING):
        completion = b.complete(constrained())
    assert completion.constrained_by is None and completion.text == " sunny and warm"
    assert field_of(server.completions[-1]) is None  # fail closed: nothing half-honoured is sent
    assert b.capabilities.constraints == ()
    assert "honours none of the constraint fields" in caplog.text and "grammar: ignored" in caplog.text


def test_the_probe_runs_once_per_server_in_a_process(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock, honours=frozenset({"grammar"}))
    backend().complete(constrained())
    probes = len(server.probes)
    again = backend(endpoint=URL + "/v1")  # the same server, written another way
    assert again.complete(constrained()).constrained_by == "gbnf"
    assert len(server.probes) == probes


def test_an_answer_that_breaks_an_honoured_constraint_is_reported_unconstrained(httpx_mock: HTTPXMock) -> None:
    server = FakeServer(httpx_mock, honours=frozenset({"grammar"}))
    b = backend()
    b.constraint_fields()
    server.honours.clear()  # the server stops honouring it after the probe
    completion = b.complete(constrained())
    assert completion.constrained_by is None and b.ignored_constraints == 1


def test_a_server_down_at_first_gives_the_optimistic_capabilities_and_is_probed_when_up(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{URL}/v1/models")
    b = backend(retries=0)
    assert b.capabilities == OPENAI.capabilities
    server = FakeServer(httpx_mock, honours=frozenset({"grammar"}))
    assert b.capabilities.constraints == ("gbnf",) and server.probes


@pytest.mark.parametrize(
    ("text", "finish", "kind", "shown"),
    [
        (PROBE_TEXT, "stop", "gbnf", True),
        (f" {PROBE_TEXT}\n", "stop", "gbnf", True),
        (" sunny", "length", "gbnf", False),
        ('{"q": "Zx7Qv"}', "stop", "json_schema", True),
        ('{\n   "q":   "Zx', "length", "json_schema", True),  # cut in free whitespace: still the shape
        ('{\n   "q":   "Zx', "stop", "json_schema", False),
        ('{"q": "other"}', "stop", "json_schema", False),
        ("", "stop", "json_schema", False),
    ],
)
def test_what_counts_as_a_probe_answer(text: str, finish: str, kind: str, shown: bool) -> None:
    assert _shows_probe(Completion(text=text, finish_reason=finish), kind) is shown  # type: ignore[arg-type]


# -- token counts ---------------------------------------------------------------------------------------


def test_llama_server_tokenize(httpx_mock: HTTPXMock) -> None:
    FakeServer(httpx_mock, bare=False)
    httpx_mock.add_response(url=f"{URL}/tokenize", json={"tokens": [1, 2, 3]}, is_reusable=True)
    b = backend()
    assert b.count_tokens("<|im_start|>user") == 3 and b.capabilities.tokenizer
    sent = json.loads(httpx_mock.get_requests(url=f"{URL}/tokenize")[-1].content)
    assert sent == {"content": "<|im_start|>user", "add_special": False, "parse_special": True}


def test_vllm_tokenize_after_llama_servers_body_is_refused(httpx_mock: HTTPXMock) -> None:
    FakeServer(httpx_mock, bare=False, listing=models({"id": "m", "owned_by": "vllm"}))

    def tokenize(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "prompt" not in body:
            return httpx.Response(400, json={"error": {"message": "body.prompt: Field required"}})
        return httpx.Response(200, json={"count": 7, "max_model_len": 4096, "tokens": list(range(7))})

    httpx_mock.add_callback(tokenize, url=f"{URL}/tokenize", is_reusable=True)
    b = backend()
    assert b.count_tokens("some text") == 7 and b.tokenizer_style() == "vllm"
    sent = json.loads(httpx_mock.get_requests(url=f"{URL}/tokenize")[-1].content)
    assert sent == {"prompt": "some text", "add_special_tokens": False, "model": "m"}


def test_llama_cpp_python_counts_without_the_tokens_it_adds(httpx_mock: HTTPXMock) -> None:
    FakeServer(httpx_mock, bare=False)
    httpx_mock.add_response(url=f"{URL}/tokenize", status_code=404, json={"detail": "Not Found"}, is_reusable=True)

    def count(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["input"]
        return httpx.Response(200, json={"count": 1 + len(text.split())})  # a BOS, then one token a word

    httpx_mock.add_callback(count, url=f"{URL}/extras/tokenize/count", is_reusable=True)
    b = backend()
    assert b.count_tokens("three little words") == 3 and b.tokenizer_style() == "llama-cpp-python"


def test_without_a_tokenizer_counts_are_estimates_that_learn_from_usage(httpx_mock: HTTPXMock) -> None:
    FakeServer(httpx_mock, bare=False)
    httpx_mock.add_response(url=f"{URL}/tokenize", status_code=404, json={"detail": "Not Found"}, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/extras/tokenize/count", text="<html>no</html>", is_reusable=True)  # 200, not JSON
    b = backend()
    text = "x" * 70
    assert b.count_tokens(text) == 20 and not b.capabilities.tokenizer  # 3.5 characters a token at first
    b.complete(CompletionRequest(prompt="y" * 80, max_tokens=4))  # the server says 40 prompt tokens: 2 a token
    assert b.count_tokens(text) == 35


# -- the context size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "props", "context"),
    [
        ({"max_model_len": 4096}, None, 4096),
        ({"meta": {"n_ctx": 2048, "n_ctx_train": 8192}}, None, 2048),
        ({"parameters": {"max_seq_len": 3072}}, None, 3072),
        ({"context_length": 1024}, None, 1024),
        ({"meta": {"n_ctx_train": 8192}}, {"default_generation_settings": {"n_ctx": 4096}}, 4096),
        ({"meta": {"n_ctx_train": 8192}}, {"n_ctx": 1536}, 1536),
        ({"meta": {"n_ctx_train": 8192}}, None, 8192),
        ({}, None, None),
    ],
)
def test_the_context_size_comes_from_the_first_field_that_tells(
    httpx_mock: HTTPXMock, entry: dict[str, Any], props: dict[str, Any] | None, context: int | None
) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/models", json=models({"id": "m", **entry}), is_reusable=True)
    if props is None:
        httpx_mock.add_response(url=f"{URL}/props", status_code=404, json={"detail": "Not Found"}, is_optional=True)
    else:
        httpx_mock.add_response(url=f"{URL}/props", json=props, is_optional=True)
    b = backend(context_window=3000)
    status = b.check()
    assert status.ok and status.context_window == context
    assert b.context_window() == (context or 3000)  # nothing reported: the configured value


def test_an_empty_model_list_is_a_failed_check(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/v1/models", json={"object": "list", "data": []})
    status = backend().check()
    assert not status.ok and "lists no model" in status.detail


def test_the_api_key_goes_to_every_request_the_probe_makes(httpx_mock: HTTPXMock) -> None:
    FakeServer(httpx_mock, honours=frozenset({"grammar"}), bare=False)
    httpx_mock.add_response(url=f"{URL}/tokenize", json={"tokens": [1]}, is_reusable=True)
    b = backend(api_key="sk-local")
    b.complete(constrained())
    b.count_tokens("hi")
    assert all(r.headers["Authorization"] == "Bearer sk-local" for r in httpx_mock.get_requests())
