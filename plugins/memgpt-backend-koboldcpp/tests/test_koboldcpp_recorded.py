"""Replays of what ``KoboldCppBackend`` said to a real koboldcpp (``recordings/``, written by
``scripts/record-koboldcpp.py``; the header of each file names the koboldcpp commit, version, date and model).

(a) Every recorded request of the backend, sent again to the koboldcpp dialect test server
    (``tests/dialects/koboldcpp.py``), gets the status the real server gave and an answer of the same shape
    (keys and JSON types, recursively); token counts and the probes must match exactly.
(b) Every field the backend sends today (bodies built by the backend itself) appears in a recorded request
    the real server accepted, with evidence in the recordings that it was honoured, not ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA
from memgpt_backend_koboldcpp.backend import KoboldCppBackend
from tests.dialects.recording import shape_mismatches

RECORDINGS = Path(__file__).parent / "recordings"
SCENARIOS = sorted(p.stem for p in RECORDINGS.glob("*.json"))
#: The key the replayed ``api_key`` scenario's dialect server is built with ("right" in a recording).
KEY = "replay-key"
GENERATE = "/api/v1/generate"
TOKENCOUNT = "/api/extra/tokencount"


@cache
def recording(scenario: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"{scenario}.json").read_text())


def exchanges(scenario: str, actor: str | None = "backend") -> list[dict[str, Any]]:
    return [e for e in recording(scenario)["exchanges"] if actor is None or e["actor"] == actor]


def labelled(label: str, scenario: str = "fields") -> dict[str, Any]:
    found = [e for e in exchanges(scenario, None) if e.get("label") == label]
    assert found, f"no exchange labelled {label!r} in {scenario}.json: re-record with scripts/record-koboldcpp.py"
    return found[0]


def text_of(exchange: dict[str, Any]) -> str:
    return exchange["response"]["results"][0]["text"]


def test_the_recordings_are_there_and_say_where_they_came_from() -> None:
    assert {"probe", "tokencount", "constrained", "unconstrained", "stop", "fields", "invalid_grammar"} <= set(SCENARIOS)
    assert {"api_key", "memgpt_run"} <= set(SCENARIOS)
    for scenario in SCENARIOS:
        header = recording(scenario)["header"]
        assert header["server"] == "koboldcpp" and len(header["koboldcpp_commit"]) == 40, scenario
        assert header["koboldcpp_version"]["result"] == "KoboldCpp" and header["koboldcpp_version"]["version"]
        assert (
            header["recorded_at"] and header["model"] and header["recorded_by"].startswith("python scripts/record-koboldcpp.py")
        )
        for exchange in exchanges(scenario, None):
            assert exchange["api_key"] in ("none", "right", "wrong"), "a key other than the throwaway ones was recorded"


# -- (a) the dialect server answers like the real one ------------------------------------------------------


def _replays() -> list[Any]:
    cases = []
    for scenario in SCENARIOS:
        for i, exchange in enumerate(exchanges(scenario)):
            slow = [pytest.mark.slow] if exchange["path"] == GENERATE else []  # real generation, up to 256 tokens
            case_id = f"{scenario}-{i}-{exchange['method']}{exchange['path']}"
            cases.append(pytest.param(scenario, i, exchange, id=case_id, marks=slow))
    return cases


def _replay(server: Any, exchange: dict[str, Any]) -> httpx.Response:
    headers = {}
    if exchange["api_key"] != "none":
        headers["Authorization"] = "Bearer " + (KEY if exchange["api_key"] == "right" else "not-the-key")
    return httpx.request(
        exchange["method"], server.url + exchange["path"], json=exchange["request"], headers=headers, timeout=600.0
    )


@pytest.mark.model
@pytest.mark.parametrize(("scenario", "index", "exchange"), _replays())
def test_the_dialect_server_answers_each_recorded_request_like_koboldcpp(
    dialect_server: Callable[..., Any], scenario: str, index: int, exchange: dict[str, Any]
) -> None:
    # The real 1.76 reports a stop-string hit as "length": the replay server does too.
    options: dict[str, Any] = {"legacy_finish_reason": True}
    if scenario == "api_key":
        options["api_key"] = KEY
    server = dialect_server("koboldcpp", **options)
    answer = _replay(server, exchange)
    assert answer.status_code == exchange["status"], answer.text[:500]
    ours = answer.json()
    assert shape_mismatches(exchange["response"], ours) == [], (exchange["response"], ours)
    if exchange["path"] == TOKENCOUNT and exchange["status"] == 200:
        assert ours == exchange["response"], "the dialect server tokenizes differently from koboldcpp"
    if exchange["method"] == "GET":  # model name (or its protected placeholder) and context size
        assert ours == exchange["response"]


@pytest.mark.model
@pytest.mark.slow
def test_after_an_invalid_grammar_the_legacy_parser_ignores_later_grammars_as_koboldcpp_did(
    dialect_server: Callable[..., Any],
) -> None:
    """Replays ``invalid_grammar`` in order on a fresh server: as on the real 1.76, the valid grammars sent
    after the invalid one are ignored, so no output parses under its schema."""
    server = dialect_server("koboldcpp", legacy_grammar_parser=True, model_name="parser-replay")
    data = recording("invalid_grammar")
    schemas = [ANSWER_SCHEMA, ANSWER_SCHEMA, data["schemas"]["call"]]
    generations = [e for e in exchanges("invalid_grammar") if e["path"] == GENERATE]
    assert len(generations) == len(schemas)
    for exchange, schema in zip(generations, schemas, strict=True):
        real, ours = text_of(exchange), _replay(server, exchange).json()["results"][0]["text"]
        assert _violates(real, schema), real  # what the real koboldcpp did
        assert _violates(ours, schema), ours


def _violates(text: str, schema: dict[str, Any]) -> bool:
    try:
        return schema_violation(json.loads(text), schema) is not None
    except ValueError:
        return True


# -- (b) every field the backend sends was honoured by the real server ---------------------------------------


def sent_fields(httpx_mock: HTTPXMock) -> dict[str, set[str]]:
    """Every field the backend puts in each request body today, from the bodies it really builds."""
    url = "http://127.0.0.1:9"
    httpx_mock.add_response(url=f"{url}/api/extra/true_max_context_length", json={"value": 4096}, is_reusable=True)
    httpx_mock.add_response(url=f"{url}/api/v1/model", json={"result": "koboldcpp/m"}, is_reusable=True)
    httpx_mock.add_response(url=f"{url}{TOKENCOUNT}", json={"value": 3, "ids": [1, 2, 3]}, is_reusable=True)
    httpx_mock.add_response(
        url=f"{url}{GENERATE}", json={"results": [{"text": '{"answer": "yes", "confident": true}'}]}, is_reusable=True
    )
    backend = KoboldCppBackend(BackendSettings(endpoint=url, api_key=SecretStr("k"), options={"backoff": 0.0}))
    backend.check()
    backend.count_tokens("text")
    for request in (
        CompletionRequest(prompt="p", max_tokens=8),
        CompletionRequest(
            prompt="p",
            max_tokens=8,
            stop=("\n",),
            sampling=SamplingParams(seed=3),
            constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
        ),
    ):
        backend.complete(request)
    fields: dict[str, set[str]] = {}
    for sent in httpx_mock.get_requests():
        body = json.loads(sent.content) if sent.content else {}
        fields.setdefault(sent.url.path, set()).update(body)
    return fields


def _differs(field: str) -> str | None:
    base, again, changed = labelled("base"), labelled("base again"), labelled(f"{field} changed")
    if text_of(base) != text_of(again):
        return "the base request is not deterministic, so a difference proves nothing"
    if text_of(changed) == text_of(base):
        return f"changing {field} changed nothing: {text_of(base)!r}"
    return None


def _pair_differs(field: str) -> str | None:
    base, changed = labelled(f"{field} base"), labelled(f"{field} changed")
    return None if text_of(base) != text_of(changed) else f"changing {field} changed nothing: {text_of(base)!r}"


def _prompt_continued() -> str | None:
    # COUNT_PROMPT ends "1, 2, 3,": greedy SmolLM2 goes on counting.
    text = text_of(labelled("stop_sequence base"))
    return None if text.startswith(" 4, 5") else f"the prompt was not continued: {text!r}"


def _max_length() -> str | None:
    cut = labelled("max_length changed")
    words = len(text_of(cut).split())
    if cut["request"]["max_length"] != 4 or cut["response"]["results"][0]["finish_reason"] != "length" or words > 4:
        return f"max_length 4 did not cut the completion: {cut['response']}"
    # and the backend's own 12-token request: koboldcpp's own count of the last generation (/api/extra/perf)
    flow = exchanges("unconstrained", None)
    i = next(i for i, e in enumerate(flow) if e["path"] == GENERATE and e["request"]["max_length"] == 12)
    perf = next(e for e in flow[i:] if e["path"] == "/api/extra/perf")  # after the backend's token counts
    return None if perf["response"]["last_token_count"] == 12 else f"perf says {perf['response']}"


def _stop_sequence() -> str | None:
    base, stopped = text_of(labelled("stop_sequence base")), text_of(labelled("stop_sequence changed"))
    if " 7" not in base or not stopped.endswith(" 7") or not base.startswith(stopped):
        return f"the stop string ' 7' did not end the completion: {base!r} -> {stopped!r}"
    # and koboldcpp calls that "length": why the backend looks for the stop string itself
    if labelled("stop_sequence changed")["response"]["results"][0]["finish_reason"] != "length":
        return "koboldcpp no longer reports a stop-string hit as 'length': revisit the backend's _cut_at_stop"
    return None


def _grammar() -> str | None:
    data = recording("constrained")
    schemas = [data["schemas"]["call"], data["schemas"]["call"], data["schemas"]["answer"]]
    outputs = [text_of(e) for e in exchanges("constrained") if e["path"] == GENERATE]
    for text, schema in zip(outputs, schemas, strict=True):
        if _violates(text, schema):
            return f"constrained output does not parse under its schema: {text!r}"
    if not _violates(text_of(labelled("grammar base")), ANSWER_SCHEMA):
        return "the same prompt without a grammar already matched the schema: proves nothing"
    if _violates(text_of(labelled("grammar changed")), ANSWER_SCHEMA):
        return "ANSWER_GBNF was ignored"
    # the agent's own turns in `memgpt run`: every generation was a JSON call
    for exchange in exchanges("memgpt_run"):
        if exchange["path"] == GENERATE and "grammar" in exchange["request"]:
            text = text_of(exchange)
            if exchange["response"]["results"][0]["finish_reason"] != "length" and "function" not in json.loads(text):
                return f"memgpt run turn not under the call grammar: {text!r}"
    return None


def _count_prompt() -> str | None:
    counts = {e["request"]["prompt"]: e["response"]["value"] for e in exchanges("tokencount")}
    words = counts.get("word " * 300)
    return None if words is not None and 300 <= words <= 302 else f"300 words counted as {words}"


def _special() -> str | None:
    # koboldcpp adds its BOS (SmolLM2: <|im_start|>) with special=true unless the text starts with it.
    plain, special = [e["response"] for e in exchanges("fields", None) if e.get("label", "").startswith("special")][:2]
    return None if special["value"] == plain["value"] + 1 else f"special changed nothing: {plain} vs {special}"


EVIDENCE: dict[tuple[str, str], Callable[[], str | None]] = {
    (GENERATE, "prompt"): _prompt_continued,
    (GENERATE, "max_length"): _max_length,
    (GENERATE, "max_context_length"): lambda: _pair_differs("max_context_length"),
    (GENERATE, "temperature"): lambda: _differs("temperature"),
    (GENERATE, "top_k"): lambda: _differs("top_k"),
    (GENERATE, "top_p"): lambda: _differs("top_p"),
    (GENERATE, "min_p"): lambda: _differs("min_p"),
    (GENERATE, "sampler_seed"): lambda: _differs("sampler_seed"),
    (GENERATE, "rep_pen"): lambda: _pair_differs("rep_pen"),
    (GENERATE, "stop_sequence"): _stop_sequence,
    (GENERATE, "grammar"): _grammar,
    (TOKENCOUNT, "prompt"): _count_prompt,
    (TOKENCOUNT, "special"): _special,
}


def test_every_field_the_backend_sends_was_accepted_and_honoured_by_koboldcpp(httpx_mock: HTTPXMock) -> None:
    sent = sent_fields(httpx_mock)
    assert set(sent) == {"/api/v1/model", "/api/extra/true_max_context_length", TOKENCOUNT, GENERATE}
    recorded = [e for s in SCENARIOS for e in exchanges(s)]
    for path, fields in sent.items():
        for field in sorted(fields):
            accepted = [e for e in recorded if e["path"] == path and e["status"] == 200 and field in (e["request"] or {})]
            assert accepted, f"{path} `{field}` never reached the real koboldcpp: re-record (scripts/record-koboldcpp.py)"
            assert (path, field) in EVIDENCE, f"{path} `{field}`: no recorded evidence that koboldcpp honours it"
            problem = EVIDENCE[(path, field)]()
            assert problem is None, f"{path} `{field}`: {problem}"


@pytest.mark.model
def test_recorded_token_counts_equal_llama_cpps_own(llama: Any) -> None:
    """koboldcpp's ``/api/extra/tokencount`` with ``special: false`` is llama.cpp's tokenizer, special tokens
    parsed, no BOS: what memgpt's in-process backend counts."""
    for exchange in exchanges("tokencount"):
        own = llama.tokenize(exchange["request"]["prompt"].encode(), add_bos=False, special=True)
        assert exchange["response"] == {"value": len(own), "ids": own}


def test_the_backend_read_the_real_answers_as_intended() -> None:
    """What the backend made of the real answers (``backend_results``, recorded alongside)."""
    stop = {r["note"]: r for r in recording("stop")["backend_results"]}
    assert stop["count, greedy, stop ' 7'"]["finish_reason"] == "stop" and stop["count, greedy, stop ' 7'"]["text"] == " 4, 5, 6,"
    assert stop["count, greedy, no stop string"]["finish_reason"] == "length"
    constrained = recording("constrained")["backend_results"]
    assert [r["constrained_by"] for r in constrained] == ["gbnf"] * 3
    invalid = recording("invalid_grammar")["backend_results"]
    assert [r["constrained_by"] for r in invalid] == [None] * 3  # fail closed: every one was ignored
    keyed = {r["note"]: r for r in recording("api_key")["backend_results"]}
    assert (
        not keyed["check() with a wrong key"]["status"]["ok"]
        and "--password" in keyed["check() with a wrong key"]["status"]["detail"]
    )
    assert not keyed["check() without a key"]["status"]["ok"]
    assert keyed["check() with the key"]["status"]["ok"]
    assert "401" in keyed["complete with a wrong key"]["error"] and "text" in keyed["complete with the key"]
    run = recording("memgpt_run")["backend_results"][0]
    assert "exit 0" in run["note"], run["stderr_tail"]
    turns = [e for e in run["stdout_events"] if e["type"] == "turn"]
    assert len(turns) == 3 and not [e for e in run["stdout_events"] if e["type"] == "error"]
