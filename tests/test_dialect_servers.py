"""Tests of the dialect test servers: test servers speaking koboldcpp, text-generation-webui, LM Studio and
vLLM, backed by real llama.cpp generation (SmolLM2), because the real servers cannot be installed here.

They prove the servers are faithful (documented requests work, constrained output really matches the
constraint, token counts are llama.cpp's own, stop strings / max tokens / finish reasons are honest) and strict
(misspelled fields and wrong model names are rejected in each server's error shape), and that every fault
switch does what ``tests/dialects/README.md`` says. Plain httpx; generation is kept short (≤ 64 tokens).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jsonschema
import pytest

from tests.dialects.clients import (
    LMSTUDIO_MODEL,
    SPEAKERS,
    VLLM_MODEL,
    WEBUI_MODEL,
    Speaker,
    kobold_body,
    lmstudio_body,
    vllm_body,
    webui_body,
)

pytestmark = pytest.mark.model

PROMPT = (
    "<|im_start|>system\nReply with one JSON function call.<|im_end|>\n"
    "<|im_start|>user\nSay hello to Ann.<|im_end|>\n<|im_start|>assistant\n"
)
SCHEMA = {
    "type": "object",
    "properties": {
        "function": {"type": "string", "enum": ["send_message"]},
        "params": {
            "type": "object",
            "properties": {"message": {"type": "string", "maxLength": 24}},
            "required": ["message"],
        },
    },
    "required": ["function", "params"],
}
COUNT_TEXT = "<|im_start|>user\nHéllo wörld 🙂, count me!<|im_end|>\n"
FORCED = "alpha, beta, gamma, delta"
TIMEOUT = 120.0


DIALECT_NAMES = list(SPEAKERS)


def post(server: Any, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)


def prompt_tokens(llama: Any, text: str) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))


# -- faithful: documented requests, real constrained generation, honest counts ---------------------------------


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_constrained_output_is_json_matching_the_schema(name: str, dialect_server: Any, llama: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    response = post(server, speaker.path, speaker.request(PROMPT, 64, ("schema", SCHEMA), stop=("<|im_end|>",)))
    assert response.status_code == 200, response.text
    data = response.json()
    call = json.loads(speaker.text(data))
    jsonschema.validate(call, SCHEMA)
    assert speaker.finish(data) == "stop"
    usage = speaker.usage(data)
    if usage is not None:
        assert usage["prompt_tokens"] == len(prompt_tokens(llama, PROMPT))
        assert 0 < usage["completion_tokens"] <= 64
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert server.last_request(speaker.path).json["prompt"] == PROMPT


def test_lmstudio_chat_completions_under_a_json_schema(lmstudio_server: Any) -> None:
    body = {
        "model": LMSTUDIO_MODEL,
        "messages": [{"role": "user", "content": "Say hello to Ann as a JSON call."}],
        "max_tokens": 64,
        "temperature": 0.7,
        "stream": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "call", "strict": "true", "schema": SCHEMA}},
    }
    response = post(lmstudio_server, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "chat.completion" and data["system_fingerprint"] == LMSTUDIO_MODEL and data["stats"] == {}
    jsonschema.validate(json.loads(data["choices"][0]["message"]["content"]), SCHEMA)


def test_lmstudio_rest_v0_completions_report_stats(lmstudio_server: Any) -> None:
    body = lmstudio_body("Say it:", 8, ("literal", "QQ"), temperature=0)
    data = post(lmstudio_server, "/api/v0/completions", body).json()
    assert data["choices"][0]["text"] == '"QQ"' and data["choices"][0]["finish_reason"] == "stop"
    assert data["stats"]["stop_reason"] == "eosFound" and data["stats"]["tokens_per_second"] > 0
    assert data["model_info"]["format"] == "gguf" and "system_fingerprint" not in data


def test_vllm_response_format_n_and_stop_string_options(vllm_server: Any) -> None:
    schema = {"type": "string", "enum": [FORCED]}
    body = vllm_body("Recite:", 32, stop=(", gamma",), n=2, include_stop_str_in_output=True, temperature=0)
    body["response_format"] = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    data = post(vllm_server, "/v1/completions", body).json()
    assert [c["text"] for c in data["choices"]] == ['"alpha, beta, gamma'] * 2
    assert [c["index"] for c in data["choices"]] == [0, 1]
    used = data["usage"]["completion_tokens"]
    assert used > 0 and used % 2 == 0  # both (identical, greedy) choices are counted


def test_token_counts_are_llama_cpp_tokenize(dialect_server: Any, llama: Any) -> None:
    expected = prompt_tokens(llama, COUNT_TEXT)
    kobold = post(dialect_server("koboldcpp"), "/api/extra/tokencount", {"prompt": COUNT_TEXT}).json()
    assert kobold == {"value": len(expected), "ids": expected}
    webui = dialect_server("webui")
    assert post(webui, "/v1/internal/token-count", {"text": COUNT_TEXT}).json() == {"length": len(expected)}
    assert post(webui, "/v1/internal/encode", {"text": COUNT_TEXT}).json() == {"tokens": expected, "length": len(expected)}
    vllm = post(dialect_server("vllm"), "/tokenize", {"model": VLLM_MODEL, "prompt": COUNT_TEXT}).json()
    assert vllm == {"count": len(expected), "max_model_len": llama.n_ctx(), "tokens": expected, "token_strs": None}
    # LM Studio has no tokenizer endpoint: its usage.prompt_tokens is the exact count.
    lm = post(dialect_server("lmstudio"), "/v1/completions", lmstudio_body(COUNT_TEXT, 1)).json()
    assert lm["usage"]["prompt_tokens"] == len(expected)


def test_model_and_context_endpoints(dialect_server: Any, llama: Any) -> None:
    n_ctx = llama.n_ctx()
    kobold = dialect_server("koboldcpp").url
    assert httpx.get(kobold + "/api/extra/true_max_context_length").json() == {"value": n_ctx}
    assert httpx.get(kobold + "/api/v1/model").json() == {"result": "koboldcpp/SmolLM2-135M-Instruct.Q4_1"}
    version = httpx.get(kobold + "/api/extra/version").json()
    assert version["result"] == "KoboldCpp" and version["protected"] is False
    webui = dialect_server("webui").url
    assert httpx.get(webui + "/v1/internal/model/info").json()["model_name"] == WEBUI_MODEL
    assert [m["id"] for m in httpx.get(webui + "/v1/models").json()["data"]] == [WEBUI_MODEL]
    lm = dialect_server("lmstudio").url
    assert [m["id"] for m in httpx.get(lm + "/v1/models").json()["data"]] == [LMSTUDIO_MODEL]
    (info,) = httpx.get(lm + "/api/v0/models").json()["data"]
    assert info["state"] == "loaded" and info["loaded_context_length"] == n_ctx
    assert info["max_context_length"] == int(llama.metadata["llama.context_length"])
    vllm = dialect_server("vllm").url
    (card,) = httpx.get(vllm + "/v1/models").json()["data"]
    assert card["id"] == VLLM_MODEL and card["max_model_len"] == n_ctx
    assert httpx.get(vllm + "/version").json() == {"version": "0.12.0"}


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_stop_string_cuts_the_output(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    response = post(server, speaker.path, speaker.request("Recite:", 32, ("literal", FORCED), stop=(", gamma",)))
    data = response.json()
    assert speaker.text(data) == speaker.literal(FORCED).split(", gamma")[0]
    assert speaker.finish(data) == "stop"
    if name == "vllm":
        assert data["choices"][0]["stop_reason"] == ", gamma"


def test_koboldcpp_keeps_the_stop_sequence_unless_trim_stop(dialect_server: Any) -> None:
    server = dialect_server("koboldcpp")
    kept = post(
        server, "/api/v1/generate", kobold_body("Recite:", 32, ("literal", FORCED), stop=(", gamma",), trim_stop=False)
    ).json()
    assert kept["results"][0]["text"].startswith("alpha, beta, gamma")
    assert "delta" not in kept["results"][0]["text"] and kept["results"][0]["finish_reason"] == "stop"
    legacy = dialect_server("koboldcpp", legacy_finish_reason=True)
    old = post(legacy, "/api/v1/generate", kobold_body("Recite:", 32, ("literal", FORCED), stop=(", gamma",))).json()
    assert old["results"][0] == {"text": "alpha, beta", "finish_reason": "length"}  # koboldcpp 1.76's report


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_max_tokens_is_honoured(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    long = ("schema", {"type": "string", "minLength": 80}) if name == "lmstudio" else ("gbnf", "root ::= [a-z]{80}\n")
    data = post(server, speaker.path, speaker.request("Letters:", 5, long)).json()
    assert speaker.finish(data) == "length"
    assert speaker.text(data)
    usage = speaker.usage(data)
    if usage is not None:
        assert usage["completion_tokens"] == 5


@pytest.mark.parametrize("name", ["lmstudio", "vllm"])
def test_a_long_max_length_schema_is_accepted_as_the_real_servers_do(name: str, dialect_server: Any) -> None:
    # llama-cpp-python writes maxLength 1200 as 1200 nested optionals, which llama.cpp refuses; LM Studio
    # (llama.cpp's C++ converter) and vLLM (xgrammar) accept the schema, so the servers must too.
    server, speaker = dialect_server(name), SPEAKERS[name]
    schema = {"type": "object", "properties": {"message": {"type": "string", "maxLength": 1200}}, "required": ["message"]}
    response = post(server, speaker.path, speaker.request(PROMPT, 48, ("schema", schema)))
    assert response.status_code == 200, response.text
    if speaker.finish(response.json()) == "stop":
        jsonschema.validate(json.loads(speaker.text(response.json())), schema)
    else:
        assert speaker.text(response.json()).startswith("{")


# -- strict: wrong field names and models are refused in the server's own error shape -------------------------


@pytest.mark.parametrize(
    ("name", "misspell", "status"),
    [
        ("koboldcpp", lambda b: b | {"max_lenght": b.pop("max_length")}, 422),
        ("webui", lambda b: b | {"grammar": b.pop("grammar_string")}, 422),
        (
            "lmstudio",
            lambda b: b | {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "shema": SCHEMA}}},
            400,
        ),
        ("vllm", lambda b: b | {"guided_json": b.pop("structured_outputs")["json"]}, 400),  # removed in vLLM 0.12
    ],
)
def test_misspelled_field_is_rejected(
    name: str, misspell: Callable[[dict[str, Any]], dict[str, Any]], status: int, dialect_server: Any
) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    body = misspell(speaker.request(PROMPT, 8, ("schema", SCHEMA)))
    response = post(server, speaker.path, body)
    assert response.status_code == status, response.text
    bad = {"koboldcpp": "max_lenght", "webui": "grammar", "lmstudio": "shema", "vllm": "guided_json"}[name]
    if name == "webui":
        assert any(e["loc"][-1] == bad and e["type"] == "extra_forbidden" for e in response.json()["detail"])
    else:
        assert bad in speaker.error(response.json())
    if name == "vllm":
        assert response.json()["error"]["type"] == "Bad Request" and response.json()["error"]["code"] == 400


def test_model_name_must_be_the_served_one(dialect_server: Any) -> None:
    vllm = dialect_server("vllm")
    wrong = post(vllm, "/v1/completions", vllm_body("Hi", 4, model="gpt-4")).json()
    assert wrong["error"] == {
        "message": "The model `gpt-4` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    missing = vllm_body("Hi", 4)
    del missing["model"]
    response = post(vllm, "/v1/completions", missing)
    assert response.status_code == 400 and "model" in response.json()["error"]["message"]
    lm = post(dialect_server("lmstudio"), "/v1/completions", lmstudio_body("Hi", 4, model="llama-3"))
    assert lm.status_code == 404 and lm.json()["error"]["code"] == "model_not_found"


def test_bad_grammar_is_answered_as_each_server_does(dialect_server: Any) -> None:
    bad = ("gbnf", "root ::= undefined-rule\n")
    kobold = dialect_server("koboldcpp")  # koboldcpp ignores an invalid grammar and generates unconstrained
    ignored = post(kobold, "/api/v1/generate", kobold_body("Hello", 4, bad))
    assert ignored.status_code == 200 and isinstance(ignored.json()["results"][0]["text"], str)
    webui = post(dialect_server("webui"), "/v1/completions", webui_body("Hello", 4, bad)).json()  # generation fails: ""
    assert webui["choices"][0]["text"] == "" and webui["usage"]["completion_tokens"] == 0
    vllm = post(dialect_server("vllm"), "/v1/completions", vllm_body("Hello", 4, bad))
    assert vllm.status_code == 400 and vllm.json()["error"]["type"] == "BadRequestError"
    lm = post(
        dialect_server("lmstudio"), "/v1/completions", lmstudio_body("Hello", 4, ("schema", {"type": "string", "pattern": "\\S"}))
    )
    assert lm.status_code == 400 and "Pattern must start with" in lm.json()["error"]
    assert post(kobold, "/api/v1/generate", kobold_body("Hello", 2)).status_code == 200  # still alive


def test_lmstudio_rejects_json_object_and_answers_unknown_paths_with_200(lmstudio_server: Any) -> None:
    response = post(lmstudio_server, "/v1/completions", lmstudio_body("Hi", 4, response_format={"type": "json_object"}))
    assert response.status_code == 400
    assert response.json() == {"error": "'response_format.type' must be 'json_schema' or 'text'"}
    odd = httpx.get(lmstudio_server.url + "/v1/nothing")
    assert odd.status_code == 200 and odd.json() == {"error": "Unexpected endpoint or method. (GET /v1/nothing)"}


def test_concurrent_requests_are_serialised_on_the_one_model(dialect_server: Any) -> None:
    jobs = [(name, SPEAKERS[name]) for name in ("koboldcpp", "webui", "vllm")]

    def run(job: tuple[str, Speaker]) -> dict[str, Any]:
        name, speaker = job
        return post(dialect_server(name), speaker.path, speaker.request(PROMPT, 64, ("schema", SCHEMA))).json()

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(run, jobs))
    for (_, speaker), data in zip(jobs, answers, strict=True):
        jsonschema.validate(json.loads(speaker.text(data)), SCHEMA)


# -- the fault switch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_fault_http_500_then_recovery(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    server.inject("http_500")
    failed = post(server, speaker.path, speaker.request("Hi", 2))
    assert failed.status_code == 500 and "injected fault" in speaker.error(failed.json())
    assert post(server, speaker.path, speaker.request("Hi", 2)).status_code == 200


def test_fault_http_503_is_koboldcpp_busy(koboldcpp_server: Any) -> None:
    koboldcpp_server.inject("http_503")
    busy = post(koboldcpp_server, "/api/v1/generate", kobold_body("Hi", 2))
    assert busy.status_code == 503
    assert busy.json() == {"detail": {"msg": "Server is busy; please try again later.", "type": "service_unavailable"}}


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_fault_truncated_body_is_not_json(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    server.inject("truncated")
    response = post(server, speaker.path, speaker.request("Hi", 2))
    assert response.status_code == 200 and int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_fault_disconnect_mid_body(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    server.inject("disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        post(server, speaker.path, speaker.request("Hi", 2))


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_fault_empty_text(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    server.inject("empty")
    data = post(server, speaker.path, speaker.request(PROMPT, 8, ("schema", SCHEMA))).json()
    assert speaker.text(data) == ""
    usage = speaker.usage(data)
    assert usage is None or usage["completion_tokens"] == 0


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_fault_ignore_constraint_generates_unconstrained(name: str, dialect_server: Any) -> None:
    server, speaker = dialect_server(name), SPEAKERS[name]
    body = speaker.request("Hello", 6, ("literal", "QQQQ"), temperature=0)
    assert speaker.text(post(server, speaker.path, body).json()) == speaker.literal("QQQQ")
    server.inject("ignore_constraint")
    assert speaker.text(post(server, speaker.path, body).json()) != speaker.literal("QQQQ")


def test_fault_slow_outlasts_a_client_timeout(vllm_server: Any) -> None:
    vllm_server.inject("slow", seconds=1.5)
    with pytest.raises(httpx.ReadTimeout):
        post(vllm_server, "/v1/completions", vllm_body("Hi", 1), timeout=0.3)


def test_fault_replace_text_header_path_and_admin_endpoint(webui_server: Any) -> None:
    url = webui_server.url
    webui_server.inject("replace_text", text="not json at all")
    data = post(webui_server, "/v1/completions", webui_body("Hi", 4, ("schema", SCHEMA))).json()
    assert data["choices"][0]["text"] == "not json at all" and data["usage"]["completion_tokens"] > 0
    # per request, by header
    assert post(webui_server, "/v1/completions", webui_body("Hi", 2), headers={"X-Dialect-Fault": "http_500"}).status_code == 500
    assert post(webui_server, "/v1/completions", webui_body("Hi", 2), headers={"X-Dialect-Fault": "explode"}).status_code == 400
    # aimed at another endpoint; generation is left alone
    webui_server.inject("http_500", path="/v1/internal/token-count", times=2)
    assert post(webui_server, "/v1/internal/token-count", {"text": "a"}).status_code == 500
    assert post(webui_server, "/v1/completions", webui_body("Hi", 2)).status_code == 200
    assert post(webui_server, "/v1/internal/token-count", {"text": "a"}).status_code == 500
    assert post(webui_server, "/v1/internal/token-count", {"text": "a"}).status_code == 200
    # over HTTP, for a server in another process
    armed = httpx.post(url + "/_dialect/fault", json={"kind": "http_503"}).json()["armed"]
    assert [f["kind"] for f in armed] == ["http_503"]
    assert post(webui_server, "/v1/completions", webui_body("Hi", 2)).status_code == 503
    assert httpx.post(url + "/_dialect/fault", json={"kind": "explode"}).status_code == 400
    logged = httpx.get(url + "/_dialect/requests").json()["requests"]
    assert logged[-1]["path"] == "/v1/completions" and logged[-1]["json"]["max_tokens"] == 2


def test_api_key_is_required_where_the_server_requires_it(dialect_server: Any) -> None:
    vllm = dialect_server("vllm", api_key="s3cret")
    assert httpx.get(vllm.url + "/v1/models").json() == {"error": "Unauthorized"}
    assert httpx.get(vllm.url + "/version").status_code == 200  # vLLM guards /v1 only
    authed = httpx.get(vllm.url + "/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert authed.status_code == 200
    assert "authorization" not in vllm.last_request().headers  # credentials are never recorded
    kobold = dialect_server("koboldcpp", api_key="s3cret")
    assert post(kobold, "/api/v1/generate", kobold_body("Hi", 2)).status_code == 401
    assert httpx.get(kobold.url + "/api/extra/version").json()["protected"] is True


def test_dead_endpoint_refuses_connections(dead_endpoint: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(dead_endpoint + "/v1/models", timeout=5)
