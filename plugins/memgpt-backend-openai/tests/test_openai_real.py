"""``OpenAIBackend`` against three real OpenAI-compatible servers, each started by a fixture (``conftest.py``).

For each server: the whole ``BackendContract`` through its ``/v1``, which constraint fields the probe found
(printed, and pinned: a server that changes what it honours shows up here), the agent's call grammar honoured
in the field found, the token counts against llama.cpp's own tokenizer, and the context size. Against
llama-server also a scripted ``memgpt run --model-endpoint-type openai`` of two turns.

- llama-server's ``/v1``: ``grammar`` and llama-server's own ``json_schema``; ``response_format`` and
  ``structured_outputs`` are ignored (HTTP 200, free text).
- llama-cpp-python's server: ``grammar`` only (its request model drops every other field); no context size.
- vLLM 0.32: ``structured_outputs.grammar`` and ``response_format``; the top-level ``grammar`` is ignored.

Markers: llama-server ``server`` + ``model``; llama-cpp-python ``model`` + ``slow`` (a server process of its
own); vLLM ``slow`` (skipped without ``scripts/setup-vllm.sh`` unless ``MEMGPT_REQUIRE_VLLM=1``). Generations
are short and greedy where the contract says so; vLLM does 6-15 tokens/s here, so its tests are few.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint, shape_for_budget
from memgpt.parsing._call import parse_call
from memgpt.testing.backend import ANSWER_SCHEMA, TOKENIZER_SAMPLES, BackendContract
from memgpt_backend_openai.backend import OpenAIBackend

CONTEXT = 4096  # what every server here is started with (conftest.py)
SCHEMAS = [spec.schema for spec in FUNCTIONS]
CALL_TOKENS = 256
SHAPE = shape_for_budget(SCHEMAS, CALL_TOKENS, CallShape(max_string_chars=24))
CALL_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n<|im_start|>user\n"
)


def show_detected(backend: OpenAIBackend, server: str) -> dict[str, str]:
    """The constraint fields the probe found, printed (``-s`` / ``-rA`` show them) and returned."""
    fields = backend.constraint_fields()
    print(f"\n{server}: {backend.constraint_report()}; tokenizer: {backend.tokenizer_style() or 'estimate'}")
    return {str(kind): name for kind, name in fields.items()}


def call_under(backend: OpenAIBackend, line: str, constraint: Constraint, seed: int) -> str:
    """One agent-style call under ``constraint``; it must come back constrained, complete and valid."""
    prompt = CALL_PROMPT + line + "<|im_end|>\n<|im_start|>assistant\n"
    request = CompletionRequest(
        prompt=prompt, max_tokens=CALL_TOKENS + 40, constraint=constraint, sampling=SamplingParams(temperature=0.8, seed=seed)
    )
    completion = backend.complete(request)
    assert completion.constrained_by == next(iter(constraint.kinds())), completion.text
    assert completion.finish_reason == "stop", completion.text
    text = completion.text
    if constraint.gbnf is not None:
        parsed = parse_call(text, SCHEMAS, SHAPE)
        assert parsed.repairs == () and parsed.rest.strip() == "", (text, parsed.repairs)
    if constraint.json_schema is not None:
        assert schema_violation(json.loads(text), constraint.json_schema) is None, text
    return text


def call_constraint() -> Constraint:
    return build_call_constraint(SCHEMAS, SHAPE)


def scripted_run(
    url: str, agent: str, messages: list[str], home: Path, *, model: str | None = None, timeout: float = 600
) -> list[dict[str, Any]]:
    """`memgpt run --model-endpoint-type openai` non-interactively, in a subprocess, with ``--debug``; returns
    its JSON lines and checks it ended cleanly with one turn per message, each with exact usage."""
    args = [sys.executable, "-m", "memgpt", "run", "--agent", agent, "--first", "--yes", "--debug"]
    args += ["--model-endpoint-type", "openai", "--model-endpoint", url + "/v1", "--model-wrapper", "chatml-grammar"]
    if model:
        args += ["--model", model]
    for text in messages:
        args += ["--message", text]
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    out = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["type"] == "session" and lines[0]["backend"] == "openai"
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == len(messages) and not [line for line in lines if line["type"] == "error"], out.stdout[-3000:]
    assert all(t["usage"]["prompt_tokens"] > 0 and t["usage"]["completion_tokens"] > 0 for t in turns)
    assert [line for line in lines if line["type"] == "assistant"], "the agent never spoke"
    return lines


def debug_log(home: Path) -> str:
    """The text of the debug log(s) `memgpt run --debug` wrote under ``home``."""
    return "\n".join(p.read_text(errors="replace") for p in sorted((home / "logs").glob("debug-*.log")))


# -- llama-server's /v1 ------------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.model
class TestLlamaServerV1Contract(BackendContract):
    @pytest.fixture
    def backend(self, llama_server_v1: Any) -> OpenAIBackend:  # type: ignore[override]
        return OpenAIBackend(BackendSettings(endpoint=llama_server_v1.url + "/v1", timeout=120.0))


@pytest.mark.server
@pytest.mark.model
class TestLlamaServerV1:
    @pytest.fixture
    def backend(self, llama_server_v1: Any) -> OpenAIBackend:
        return OpenAIBackend(BackendSettings(endpoint=llama_server_v1.url + "/v1", timeout=120.0))

    def test_grammar_and_json_schema_are_found_and_honoured(self, backend: OpenAIBackend) -> None:
        assert show_detected(backend, "llama-server /v1") == {"gbnf": "grammar", "json_schema": "json_schema"}
        assert "response_format: ignored" in backend.constraint_report()
        full = call_constraint()
        call_under(backend, "Hi! My name is Ada and I like sailing.", Constraint(gbnf=full.gbnf), seed=1)
        call_under(backend, "Please remember that my cat is called Turing.", Constraint(json_schema=full.json_schema), seed=2)

    @pytest.mark.parametrize("text", TOKENIZER_SAMPLES)
    def test_token_counts_equal_llama_cpps_own(self, backend: OpenAIBackend, llama: Any, text: str) -> None:
        assert backend.count_tokens(text) == len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        assert backend.tokenizer_style() == "llama.cpp" and backend.capabilities.tokenizer

    def test_the_context_size_is_the_running_one(self, backend: OpenAIBackend) -> None:
        status = backend.check()
        assert status.context_window == CONTEXT and "meta.n_ctx" in status.detail  # not n_ctx_train (8192)

    def test_a_scripted_memgpt_run_of_two_turns(self, llama_server_v1: Any, tmp_path: Path) -> None:
        lines = scripted_run(llama_server_v1.url, "on-openai", ["Hello there", "My name is Bo"], tmp_path)
        assert lines[0]["context_window"] == CONTEXT
        assert "constraints go gbnf in `grammar`" in debug_log(tmp_path)


# -- llama-cpp-python's server ---------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
class TestLlamaCppPythonContract(BackendContract):
    @pytest.fixture
    def backend(self, llama_cpp_python_server: Any) -> OpenAIBackend:  # type: ignore[override]
        return OpenAIBackend(BackendSettings(endpoint=llama_cpp_python_server.url, timeout=120.0))


@pytest.mark.model
@pytest.mark.slow
class TestLlamaCppPython:
    @pytest.fixture
    def backend(self, llama_cpp_python_server: Any) -> OpenAIBackend:
        return OpenAIBackend(BackendSettings(endpoint=llama_cpp_python_server.url + "/v1", timeout=120.0, context_window=CONTEXT))

    def test_only_grammar_is_found_and_it_is_honoured(self, backend: OpenAIBackend) -> None:
        assert show_detected(backend, "llama-cpp-python") == {"gbnf": "grammar"}
        report = backend.constraint_report()
        assert all(f"{name}: ignored" in report for name in ("response_format", "structured_outputs.json", "json_schema"))
        call_under(backend, "Hi! My name is Ada and I like sailing.", Constraint(gbnf=call_constraint().gbnf), seed=3)

    def test_a_json_schema_it_cannot_take_is_reported_unconstrained(self, backend: OpenAIBackend) -> None:
        request = CompletionRequest(
            prompt="Is the sky blue? Answer: ", max_tokens=6, constraint=Constraint(json_schema=ANSWER_SCHEMA)
        )
        completion = backend.complete(request)
        assert completion.constrained_by is None  # fail closed: nothing was sent, nothing is claimed

    @pytest.mark.parametrize("text", TOKENIZER_SAMPLES)
    def test_token_counts_equal_llama_cpps_own(self, backend: OpenAIBackend, llama: Any, text: str) -> None:
        assert backend.count_tokens(text) == len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        assert backend.tokenizer_style() == "llama-cpp-python"

    def test_no_context_size_is_reported_so_the_configured_one_applies(self, backend: OpenAIBackend) -> None:
        status = backend.check()
        assert status.ok and status.model == "smollm2" and status.context_window is None
        assert backend.context_window() == CONTEXT and not backend.capabilities.context_probe


# -- vLLM -------------------------------------------------------------------------------------------------


@pytest.mark.slow
class TestVLLMContract(BackendContract):
    @pytest.fixture
    def backend(self, real_vllm: Any) -> OpenAIBackend:  # type: ignore[override]
        return OpenAIBackend(BackendSettings(endpoint=real_vllm.url + "/v1"))


@pytest.mark.slow
class TestVLLM:
    @pytest.fixture
    def backend(self, real_vllm: Any) -> OpenAIBackend:
        return OpenAIBackend(BackendSettings(endpoint=real_vllm.url))

    def test_structured_outputs_and_response_format_are_found_and_honoured(self, backend: OpenAIBackend) -> None:
        assert show_detected(backend, "vLLM") == {"gbnf": "structured_outputs.grammar", "json_schema": "response_format"}
        assert "grammar: ignored" in backend.constraint_report()  # the top-level field llama.cpp reads
        call_under(backend, "Hi! My name is Ada and I like sailing.", Constraint(gbnf=call_constraint().gbnf), seed=4)

    def test_tokenize_context_and_penalty_name(self, backend: OpenAIBackend, llama: Any) -> None:
        for text in TOKENIZER_SAMPLES:
            assert backend.count_tokens(text) == len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        assert backend.tokenizer_style() == "vllm"
        status = backend.check()
        assert (status.model, status.context_window) == ("SmolLM2-135M-Instruct", CONTEXT)
        assert "repetition_penalty" in backend._payload(CompletionRequest(prompt="x"), None)
