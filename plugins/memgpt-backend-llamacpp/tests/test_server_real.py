"""``LlamaServerBackend`` against the real native llama-server (SmolLM2, one thread, one slot).

The contract runs first; then what only a real llama.cpp can show: the agent's call grammar is honoured
every time, ``/tokenize`` agrees with llama.cpp's own tokenizer, and a shared prefix is served from the
KV cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.errors import BackendHTTPError
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.parsing._call import parse_call
from memgpt.testing.backend import GREEDY, TOKENIZER_SAMPLES, BackendContract
from memgpt_backend_llamacpp.server import LlamaServerBackend

pytestmark = [pytest.mark.server, pytest.mark.model]

SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL_TOKENS = 256
SHAPE = shape_for_budget(SCHEMAS, CALL_TOKENS, CallShape(max_string_chars=24))
CALL_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n<|im_start|>user\n"
)
USER_LINES = [
    "Hi! My name is Ada and I like sailing.",
    "What do you remember about me?",
    "Please remember that my cat is called Turing.",
    "Can you look up what we talked about yesterday?",
    "Tell me a joke about compilers.",
]


@pytest.fixture
def backend(llama_server) -> LlamaServerBackend:  # type: ignore[no-untyped-def]
    return LlamaServerBackend(BackendSettings(endpoint=llama_server.url, timeout=120.0))


class TestLlamaServerContract(BackendContract):
    @pytest.fixture
    def backend(self, llama_server) -> LlamaServerBackend:  # type: ignore[no-untyped-def,override]
        return LlamaServerBackend(BackendSettings(endpoint=llama_server.url, timeout=120.0))


def test_ten_calls_under_the_call_grammar_are_all_valid(backend: LlamaServerBackend) -> None:
    # each user line under two seeds; the call grammar's validity rate over 200 turns is
    # bench/bench_grammar.py's figure
    constraint = build_call_constraint(SCHEMAS, SHAPE)
    for i in range(2 * len(USER_LINES)):
        prompt = CALL_PROMPT + USER_LINES[i % len(USER_LINES)] + "<|im_end|>\n<|im_start|>assistant\n"
        sampling = SamplingParams(temperature=0.8, seed=100 + i)
        completion = backend.complete(
            CompletionRequest(prompt=prompt, max_tokens=CALL_TOKENS, constraint=constraint, sampling=sampling)
        )
        assert completion.constrained_by == "gbnf", completion.text
        assert completion.finish_reason == "stop", completion.text
        parsed = parse_call(completion.text, SCHEMAS, SHAPE)
        assert parsed.repairs == () and parsed.rest.strip() == "", (completion.text, parsed.repairs)
        assert parsed.call.name in {s.name for s in SCHEMAS}


def test_calls_under_the_json_schema_alone_are_valid(backend: LlamaServerBackend) -> None:
    schema = build_call_constraint(SCHEMAS, SHAPE).json_schema
    assert schema is not None
    for i in range(5):
        prompt = CALL_PROMPT + USER_LINES[i] + "<|im_end|>\n<|im_start|>assistant\n"
        completion = backend.complete(
            CompletionRequest(
                prompt=prompt,
                max_tokens=CALL_TOKENS + 40,
                constraint=Constraint(json_schema=schema),
                sampling=SamplingParams(seed=7 + i),
            )
        )
        assert completion.constrained_by == "json_schema", completion.text
        assert schema_violation(json.loads(completion.text), schema) is None


@pytest.mark.parametrize("text", TOKENIZER_SAMPLES)
def test_tokenize_counts_equal_llama_cpps_own(backend: LlamaServerBackend, llama, text: str) -> None:  # type: ignore[no-untyped-def]
    own = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    assert backend.count_tokens(text) == len(own)


def test_a_shared_prefix_is_served_from_the_kv_cache(backend: LlamaServerBackend) -> None:
    # A fresh prefix (the nonce) so nothing of it is cached before the first turn.
    prefix = (
        f"<|im_start|>system\nSession {uuid.uuid4()}. " + "You are a patient assistant who keeps notes. " * 20 + "<|im_end|>\n"
    )
    first = backend.complete(
        CompletionRequest(
            prompt=prefix + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", max_tokens=4, sampling=GREEDY
        )
    )
    second = backend.complete(
        CompletionRequest(
            prompt=prefix + "<|im_start|>user\nAnd again<|im_end|>\n<|im_start|>assistant\n", max_tokens=4, sampling=GREEDY
        )
    )
    prefix_tokens = backend.count_tokens(prefix)
    assert first.usage.cached_tokens < prefix_tokens // 2
    assert second.usage.cached_tokens >= prefix_tokens
    assert second.usage.evaluated_tokens is not None and second.usage.evaluated_tokens < 20
    assert second.usage.prompt_tokens == second.usage.cached_tokens + second.usage.evaluated_tokens
    assert second.usage.exact


def test_chat_template_and_context_come_from_props(backend: LlamaServerBackend) -> None:
    template = backend.chat_template()
    assert template is not None and "<|im_start|>" in template
    assert backend.context_window() == 4096


def test_a_grammar_the_server_rejects_is_an_http_400_and_the_server_stays_up(backend: LlamaServerBackend) -> None:
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=4, constraint=Constraint(gbnf='root ::= "unterminated')))
    assert caught.value.status_code == 400 and not caught.value.retryable
    assert backend.check().ok


def test_a_scripted_memgpt_run_completes_on_the_real_server(llama_server) -> None:  # type: ignore[no-untyped-def]
    """`memgpt run` non-interactively, in a subprocess, with the `llamacpp` backend on the real llama-server."""
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "on-llama-server", "--first", "--yes"]
    args += ["--backend", "llamacpp", "--model-endpoint", llama_server.url, "--model-wrapper", "chatml-grammar"]
    for text in ("Hello there", "My name is Bo"):
        args += ["--message", text]
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "session" and lines[0]["backend"] == "llamacpp"
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == 2 and not [line for line in lines if line["type"] == "error"], out.stdout[-3000:]
    assert all(t["usage"]["prompt_tokens"] > 0 and t["usage"]["completion_tokens"] > 0 for t in turns)
