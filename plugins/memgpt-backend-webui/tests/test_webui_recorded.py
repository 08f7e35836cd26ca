"""What memgpt's ``webui`` backend said to a REAL text-generation-webui, replayed (``tests/recordings/``).

The recordings were made by ``scripts/record-webui.py`` against oobabooga/text-generation-webui (llama.cpp
loader, SmolLM2; each file's header names the commit, the date and the command). Three kinds of test:

- *replay* (a): every recorded request is sent again to our dialect test server (``tests/dialects/webui.py``),
  which must answer with the same status and the same response shape (keys and JSON types, recursively), and
  the same token counts and empty-answer semantics;
- *honoured* (b): every field the backend sends today (bodies built by the backend itself) appears in a
  recorded request the real server accepted (HTTP 200), with evidence in the recording that it took effect:
  the grammar's output parses under its JSON schema while the same prompt unconstrained does not, a seed
  repeats a sample, top_k=1 gives the greedy text, the stop string cuts the text... A field with no such
  evidence fails here until it is recorded; a field webui accepts and ignores must be listed in ``IGNORED``
  and in the README's "Known quirks";
- *real answers*: the recorded answers fed back to the backend (pytest-httpx) give the errors and warnings
  its README promises.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.testing.backend import ANSWER_GBNF
from memgpt_backend_webui.backend import GrammarRefused, PromptOverContext, WebUIBackend
from tests.dialects.recording import shape_mismatches

RECORDINGS = Path(__file__).parent / "recordings"
README = Path(__file__).parents[1] / "README.md"
KEY = "memgpt-recording-key"  # the throwaway key the recording server was started with
DOCS = {f.stem: json.loads(f.read_text()) for f in sorted(RECORDINGS.glob("*.json"))}
#: Fields webui accepts on /v1/completions and does not use; each is a line in the README's "Known quirks".
IGNORED = {"model": "webui ignores `model`"}

# The call grammar of the recording's "call-grammar" scenario (scripts/record-webui.py builds the same).
SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL = build_call_constraint(SCHEMAS, shape_for_budget(SCHEMAS, 256, CallShape(max_string_chars=24)))


def exchanges(*scenarios: str) -> list[dict[str, Any]]:
    return [e for name, doc in DOCS.items() if not scenarios or name in scenarios for e in doc["exchanges"]]


def completions(*scenarios: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request, response) of every completion the real server answered with HTTP 200."""
    return [(e["request"], e["response"]) for e in exchanges(*scenarios) if e["path"] == "/v1/completions" and e["status"] == 200]


def text(response: dict[str, Any]) -> str:
    return response["choices"][0]["text"]


def finish(response: dict[str, Any]) -> str:
    return response["choices"][0]["finish_reason"]


def counted() -> dict[str, int]:
    """Token counts the real server gave for texts (``/v1/internal/token-count``)."""
    return {
        e["request"]["text"]: e["response"]["length"]
        for e in exchanges()
        if e["path"] == "/v1/internal/token-count" and e["status"] == 200
    }


def same_but(a: dict[str, Any], b: dict[str, Any], *fields: str) -> bool:
    """``a`` and ``b`` are the same request except for ``fields``."""
    keys = (set(a) | set(b)) - set(fields)
    return all(a.get(k) == b.get(k) for k in keys)


# -- the recordings themselves ------------------------------------------------------------------------------


def test_the_recordings_are_there_with_their_headers() -> None:
    expected = {"probe", "token-count", "call-grammar", "unconstrained", "sampling", "model-field", "context"}
    expected |= {"bad-grammar", "api-key", "memgpt-run"}
    assert expected <= set(DOCS), f"missing recordings: {sorted(expected - set(DOCS))}; run scripts/record-webui.py"
    for name, doc in DOCS.items():
        header = doc["header"]
        assert header["server"] == "oobabooga/text-generation-webui" and re.fullmatch(r"[0-9a-f]{40}", header["webui_commit"])
        assert header["loader"] == "llama.cpp" and header["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf", name
        assert header["date"] and header["webui_version"] and header["recorded_by"].startswith("python scripts/record-webui.py")
        assert header["scenario"] == name and doc["exchanges"], name
        for e in doc["exchanges"]:
            assert set(e) >= {"method", "path", "api_key", "request", "status", "response"}, (name, e)
            assert KEY not in json.dumps(e), "the key is recorded as a label, never itself"


def test_the_scripted_run_completed_its_turns_on_the_real_server() -> None:
    run = DOCS["memgpt-run"]["backend_outcomes"][0]
    assert run["returncode"] == 0, run.get("stderr_tail")
    turns = [t for t in run["turns"] if t["type"] == "turn"]
    assert len(turns) == 3 and not [t for t in run["turns"] if t["type"] == "error"], run["turns"]
    assert run["assistant"], "the agent never spoke"
    sent = [e for e in exchanges("memgpt-run") if e["path"] == "/v1/completions"]
    assert sent and all(e["status"] == 200 and e["request"].get("grammar_string") for e in sent)
    assert all(e["api_key"] == "right" for e in exchanges("memgpt-run")), "the key from MEMGPT_API_KEY_WEBUI"


# -- (a) replay against the dialect test server ------------------------------------------------------------


def _headers(label: str) -> dict[str, str]:
    if label == "right":
        return {"Authorization": f"Bearer {KEY}"}
    if label == "other":
        return {"Authorization": "Bearer not-the-key"}
    return {}


@pytest.mark.model
@pytest.mark.parametrize(
    "scenario",
    # the agent's prompts are long: replaying the scripted run takes a minute or two on one thread
    [pytest.param(name, marks=pytest.mark.slow) if name == "memgpt-run" else name for name in sorted(DOCS)],
)
def test_the_dialect_server_answers_each_recorded_request_as_the_real_one(
    dialect_server: Callable[..., Any], scenario: str
) -> None:
    server = dialect_server("webui", api_key=KEY)
    problems: list[str] = []
    for i, e in enumerate(DOCS[scenario]["exchanges"]):
        where = f"{scenario}[{i}] {e['method']} {e['path']}"
        answer = httpx.request(
            e["method"], server.url + e["path"], json=e["request"], headers=_headers(e["api_key"]), timeout=600.0
        )
        if answer.status_code != e["status"]:
            problems.append(f"{where}: HTTP {answer.status_code}, webui {e['status']}: {answer.text[:300]}")
            continue
        ours = answer.json()
        problems += [f"{where}: {p}" for p in shape_mismatches(e["response"], ours)]
        if e["path"] in ("/v1/internal/token-count", "/v1/internal/model/info") or e["status"] == 401:
            if ours != e["response"]:  # the same tokenizer, the same model file, the same refusal
                problems.append(f"{where}: {ours} vs webui's {e['response']}")
        if e["path"] == "/v1/completions" and e["status"] == 200:
            real, usage = e["response"]["usage"], ours["usage"]
            if usage["prompt_tokens"] != real["prompt_tokens"]:  # the whole prompt, counted as webui counts it
                problems.append(f"{where}: prompt_tokens {usage['prompt_tokens']} vs webui's {real['prompt_tokens']}")
            limit = e["request"].get("truncation_length") or 0
            if 0 < limit <= real["prompt_tokens"] + real["completion_tokens"] and finish(ours) != "length":
                problems.append(f"{where}: finish {finish(ours)}, webui reports length at truncation_length {limit}")
        if e["path"] == "/v1/completions" and e["status"] == 200 and text(e["response"]) == "":
            if (text(ours), finish(ours)) != ("", finish(e["response"])):  # a refused grammar, a prompt over the context
                problems.append(f"{where}: {text(ours)!r}/{finish(ours)} vs webui's ''/{finish(e['response'])}")
            if ours["usage"] != e["response"]["usage"]:
                problems.append(f"{where}: usage {ours['usage']} vs webui's {e['response']['usage']}")
    assert not problems, "\n".join(problems)


# -- (b) every field the backend sends was accepted and honoured ---------------------------------------------


def fields_sent() -> set[str]:
    """Every field of a completion body, built by the backend with every option set."""
    backend = WebUIBackend(BackendSettings(endpoint="http://127.0.0.1:9", model="SmolLM2", context_window=4096))
    request = CompletionRequest(
        prompt="p", stop=("x",), max_tokens=5, sampling=SamplingParams(seed=1), constraint=Constraint(gbnf=ANSWER_GBNF)
    )
    kind = backend.constraint_kind(request)
    assert kind == "gbnf" and request.constraint is not None
    return set(backend._payload(request, request.constraint.only(kind)))


def greedy_text(request: dict[str, Any]) -> str | None:
    """The recorded temperature-0 text for ``request``'s prompt and max_tokens, if there is one."""
    for req, resp in completions():
        if req["prompt"] == request["prompt"] and req["max_tokens"] == request["max_tokens"] and req["temperature"] == 0:
            if req.get("repetition_penalty", 1) == 1 and not req.get("stop") and "grammar_string" not in req:
                return text(resp)
    return None


def _narrowing(field: str, keeps_top: Callable[[Any], bool]) -> Iterator[str]:
    """Evidence for a sampler that, set to keep only the top token, turns a temperature-1 sample into the greedy
    text, while the same request without it (the same seed) samples something else."""
    pairs = completions()
    for req, resp in pairs:
        if req["temperature"] >= 1 and keeps_top(req[field]) and text(resp) == greedy_text(req):
            for other, other_resp in pairs:
                if same_but(req, other, field) and not keeps_top(other[field]) and text(other_resp) != text(resp):
                    yield f"{field}={req[field]} at temperature {req['temperature']} gave the greedy text; without it, not"


def evidence_prompt() -> Iterator[str]:
    counts = counted()
    for req, resp in completions():
        if counts.get(req["prompt"]) == resp["usage"]["prompt_tokens"]:
            yield f"usage.prompt_tokens {resp['usage']['prompt_tokens']} is the token count of the prompt sent"


def evidence_max_tokens() -> Iterator[str]:
    pairs = completions()
    assert all(resp["usage"]["completion_tokens"] <= req["max_tokens"] for req, resp in pairs)
    for req, resp in pairs:
        if finish(resp) == "length" and resp["usage"]["completion_tokens"] == req["max_tokens"] <= 8 and text(resp):
            yield f"max_tokens={req['max_tokens']} cut the answer there ({text(resp)!r}, finish length)"


def evidence_stop() -> Iterator[str]:
    pairs = completions()
    for req, resp in pairs:
        if not req.get("stop") or finish(resp) != "stop":
            continue
        for free, free_resp in pairs:
            if same_but(req, free, "stop") and not free.get("stop"):
                full = text(free_resp)
                hits = [full.find(s) for s in req["stop"] if s in full]
                if hits and text(resp) == full[: min(hits)]:
                    yield f"stop={req['stop']} cut {full[:40]!r}... to {text(resp)!r}"


def evidence_temperature() -> Iterator[str]:
    pairs = completions()
    greedy_same = any(
        a[0]["temperature"] == 0 and same_but(a[0], b[0], "seed") and a[0]["seed"] != b[0]["seed"] and text(a[1]) == text(b[1])
        for a in pairs
        for b in pairs
    )
    hot_differs = any(
        a[0]["temperature"] >= 1 and same_but(a[0], b[0], "seed") and a[0]["seed"] != b[0]["seed"] and text(a[1]) != text(b[1])
        for a in pairs
        for b in pairs
    )
    if greedy_same and hot_differs:
        yield "temperature 0 gives one text whatever the seed; temperature 1 another text per seed"


def evidence_seed() -> Iterator[str]:
    pairs = completions()
    for i, (a, ra) in enumerate(pairs):
        for b, rb in pairs[i + 1 :]:
            if a == b and a["temperature"] >= 1 and text(ra) == text(rb):
                for c, rc in pairs:
                    if same_but(a, c, "seed") and c["seed"] != a["seed"] and text(rc) != text(ra):
                        yield f"seed {a['seed']} at temperature {a['temperature']} repeated its sample; seed {c['seed']} did not"


def evidence_repetition_penalty() -> Iterator[str]:
    pairs = completions()
    for req, resp in pairs:
        if req["temperature"] == 0 and req["repetition_penalty"] > 1.2:
            for other, other_resp in pairs:
                if (
                    same_but(req, other, "repetition_penalty")
                    and other["repetition_penalty"] == 1
                    and text(other_resp) != text(resp)
                ):
                    yield f"repetition_penalty {req['repetition_penalty']} changed a greedy answer"


def evidence_grammar_string() -> Iterator[str]:
    pairs = completions()
    under = [(req, resp) for req, resp in pairs if req.get("grammar_string") == CALL.gbnf]
    assert under, "no recorded completion under the call grammar"
    for _, resp in under:
        assert finish(resp) == "stop", text(resp)
        assert schema_violation(json.loads(text(resp)), CALL.json_schema) is None, text(resp)
    # the agent's own grammars (memgpt run): every answer is one JSON object
    for req, resp in pairs:
        if req.get("grammar_string") and text(resp) and finish(resp) == "stop":
            assert isinstance(json.loads(text(resp)), dict), text(resp)
    for req, resp in pairs:
        if "grammar_string" not in req and any(
            same_but(
                req, u, "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", "grammar_string"
            )
            for u, _ in under
        ):
            try:
                free = json.loads(text(resp))
            except ValueError:
                free = None
            if free is None or schema_violation(free, CALL.json_schema) is not None:
                yield f"{len(under)} answers under the call grammar parse under its schema; the same prompt without it: {text(resp)[:60]!r}"


def evidence_truncation_length() -> Iterator[str]:
    counts = counted()
    for req, resp in completions():
        usage = resp["usage"]
        limit = req.get("truncation_length", 0)
        if 0 < limit < counts.get(req["prompt"], 0) == usage["prompt_tokens"] and text(resp):
            # the llama.cpp loader does not cut the prompt; truncation_length decides finish_reason
            if finish(resp) == "length" and usage["completion_tokens"] < req["max_tokens"]:
                yield (
                    f"truncation_length {limit}: a {usage['prompt_tokens']}-token prompt was not cut, and an answer of "
                    f"{usage['completion_tokens']} < max_tokens {req['max_tokens']} tokens is reported as finish length"
                )


def evidence_model() -> Iterator[str]:
    for req, resp in completions():
        if req.get("model") and resp["model"] != req["model"]:
            yield f"model {req['model']!r} was accepted and answered by the loaded {resp['model']!r} (ignored)"


EVIDENCE: dict[str, Callable[[], Iterator[str]]] = {
    "prompt": evidence_prompt,
    "max_tokens": evidence_max_tokens,
    "stop": evidence_stop,
    "temperature": evidence_temperature,
    "seed": evidence_seed,
    "top_k": lambda: _narrowing("top_k", lambda v: v == 1),
    "top_p": lambda: _narrowing("top_p", lambda v: v <= 0.05),
    "min_p": lambda: _narrowing("min_p", lambda v: v >= 0.95),
    "repetition_penalty": evidence_repetition_penalty,
    "grammar_string": evidence_grammar_string,
    "truncation_length": evidence_truncation_length,
    "model": evidence_model,
}


def test_the_backend_sends_no_field_without_recorded_evidence() -> None:
    missing = fields_sent() - set(EVIDENCE)
    assert not missing, f"{sorted(missing)}: record them (scripts/record-webui.py) and add their evidence here"


@pytest.mark.parametrize("field", sorted(EVIDENCE))
def test_each_field_sent_was_accepted_and_honoured_by_the_real_server(field: str) -> None:
    if field not in fields_sent():
        pytest.skip(f"the backend no longer sends {field}")
    accepted = [req for req, _ in completions() if field in req]
    assert accepted, f"no recorded request that webui answered with 200 carries {field}"
    found = list(EVIDENCE[field]())
    assert found, f"the recordings show no effect of {field}"
    if field in IGNORED:
        quirks = README.read_text().split("## Known quirks", 1)[1]
        assert IGNORED[field] in quirks, f"{field} is ignored by webui: say so in the README's Known quirks"


# -- the real answers, fed back to the backend -----------------------------------------------------------------


def _replay_answers(httpx_mock: HTTPXMock, scenario: str) -> tuple[dict[str, Any], WebUIBackend]:
    """The backend on a mock that gives the real server's first recorded completion answer of ``scenario``."""
    e = next(e for e in exchanges(scenario) if e["path"] == "/v1/completions")
    httpx_mock.add_response(
        url="http://127.0.0.1:9/v1/completions", status_code=e["status"], json=e["response"], is_optional=True
    )
    return e["request"], WebUIBackend(BackendSettings(endpoint="http://127.0.0.1:9", options={"backoff": 0.0}))


def test_a_refused_grammar_is_named_and_not_retried(httpx_mock: HTTPXMock) -> None:
    request, backend = _replay_answers(httpx_mock, "bad-grammar")
    with pytest.raises(GrammarRefused, match="refused the grammar"):
        backend.complete(
            CompletionRequest(
                prompt=request["prompt"], max_tokens=request["max_tokens"], constraint=Constraint(gbnf=request["grammar_string"])
            )
        )
    assert len(httpx_mock.get_requests()) == 1


def test_a_prompt_over_the_context_is_named_and_not_retried(httpx_mock: HTTPXMock) -> None:
    e = next(e for e in exchanges("context") if e["path"] == "/v1/completions" and text(e["response"]) == "")
    httpx_mock.add_response(url="http://127.0.0.1:9/v1/completions", json=e["response"])
    backend = WebUIBackend(BackendSettings(endpoint="http://127.0.0.1:9", options={"backoff": 0.0}))
    with pytest.raises(PromptOverContext, match="does not fit the loaded context") as caught:
        backend.complete(CompletionRequest(prompt=e["request"]["prompt"], max_tokens=e["request"]["max_tokens"]))
    assert str(e["response"]["usage"]["prompt_tokens"]) in str(caught.value)
    assert len(httpx_mock.get_requests()) == 1


def test_an_answer_from_another_model_than_configured_is_warned_about(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    e = exchanges("model-field")[0]
    httpx_mock.add_response(url="http://127.0.0.1:9/v1/completions", json=e["response"])
    backend = WebUIBackend(BackendSettings(endpoint="http://127.0.0.1:9", model=e["request"]["model"]))
    with caplog.at_level(logging.WARNING, logger="memgpt"):
        completion = backend.complete(CompletionRequest(prompt=e["request"]["prompt"], max_tokens=e["request"]["max_tokens"]))
    assert completion.model == e["response"]["model"]
    assert any("ignores `model`" in r.getMessage() for r in caplog.records)


def test_each_real_answer_parses(httpx_mock: HTTPXMock) -> None:
    """Every non-empty 200 answer the real server gave reads back into a Completion with exact usage."""
    backend = WebUIBackend(BackendSettings(endpoint="http://127.0.0.1:9", options={"backoff": 0.0}, retries=0))
    for req, resp in completions():
        if not text(resp):
            continue
        httpx_mock.add_response(url="http://127.0.0.1:9/v1/completions", json=resp)
        completion = backend.complete(CompletionRequest(prompt=req["prompt"], max_tokens=req["max_tokens"]))
        assert (completion.text, completion.finish_reason) == (text(resp), finish(resp))
        assert completion.usage.exact and completion.usage.prompt_tokens == resp["usage"]["prompt_tokens"]
        assert completion.usage.cached_tokens is None  # webui does not say: unknown, not 0


@pytest.mark.model
def test_the_recorded_token_counts_are_llama_cpps_own(llama: Any) -> None:
    for text_, length in counted().items():
        assert len(llama.tokenize(text_.encode("utf-8"), add_bos=True, special=True)) == length, text_[:60]
