"""``EmbeddedBackend`` generating for real with SmolLM2 in process (one thread, one shared model).

The contract first; then what only this backend promises: the agent's call grammar holds turn after turn
(fast-forward included), JSON schemas work, token counts are llama.cpp's own, a shared prefix is not
evaluated twice (not even after an unrelated side call), and a bad grammar is an error, not a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from memgpt.contract import BackendSettings, CallShape, CompletionRequest, Constraint, SamplingParams
from memgpt.contract.conformance import schema_violation
from memgpt.errors import GrammarError
from memgpt.functions.memory import FUNCTIONS
from memgpt.grammar.call import build_call_constraint
from memgpt.parsing._call import parse_call
from memgpt.testing.backend import GREEDY, TOKENIZER_SAMPLES, BackendContract
from memgpt_backend_llamacpp.embedded import EmbeddedBackend

pytestmark = pytest.mark.model

SCHEMAS = [spec.schema for spec in FUNCTIONS]
# Short strings keep each turn quick; the longest call (4 strings, structure ~45 tokens) stays under budget.
SHAPE = CallShape(max_string_chars=12)
CALL_TOKENS = 128
SYSTEM = (
    "<|im_start|>system\nYou are a helpful assistant with memory. Reply with exactly one JSON function call: "
    '{"function": NAME, "params": {"inner_thoughts": "...", ...}}. Functions: '
    + ", ".join(f"{s.name} ({s.description[:60]})" for s in SCHEMAS)
    + "<|im_end|>\n"
)
USER_LINES = [
    "Hi! My name is Ada and I like sailing.",
    "What do you remember about me?",
    "Please remember that my cat is called Turing.",
    "Can you look up what we talked about yesterday?",
    "Tell me a joke about compilers.",
]


def user(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def embedded(threads: int) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(BackendSettings(threads=threads, options={"quiet": True, "persist_state": False}))
    yield backend
    backend.close()


class TestEmbeddedContract(BackendContract):
    needs_endpoint = False

    @pytest.fixture
    def backend(self, embedded: EmbeddedBackend) -> EmbeddedBackend:  # type: ignore[override]
        return embedded


# ---- the grammar, turn after turn ----


def test_ten_turns_under_the_call_grammar_are_all_valid_calls(embedded: EmbeddedBackend) -> None:
    # Two conversations of five turns: a growing history, then a reset to the shared prefix. The rate over
    # 100 turns on the full MemGPT prompt is bench/bench_embedded.py's figure (CI time).
    constraint = build_call_constraint(SCHEMAS, SHAPE)
    history = SYSTEM
    for i in range(2 * len(USER_LINES)):
        prompt = history + user(USER_LINES[i % len(USER_LINES)])
        sampling = SamplingParams(temperature=0.9, seed=1000 + i)
        completion = embedded.complete(
            CompletionRequest(prompt=prompt, max_tokens=CALL_TOKENS, constraint=constraint, sampling=sampling)
        )
        assert completion.constrained_by == "gbnf"
        assert completion.finish_reason == "stop", completion.text
        parsed = parse_call(completion.text, SCHEMAS, SHAPE)
        assert parsed.repairs == () and parsed.rest == "", (completion.text, parsed.repairs)
        assert schema_violation(json.loads(completion.text), constraint.json_schema or {}) is None
        if i % 5 == 4:
            history = SYSTEM  # keep the prompt short for CI
        else:
            history = prompt + completion.text + "<|im_end|>\n"


def test_the_json_schema_alone_constrains_the_output(embedded: EmbeddedBackend) -> None:
    schema = {
        "type": "object",
        "properties": {
            "mood": {"type": "string", "enum": ["happy", "sad", "curious"]},
            "count": {"type": "integer", "minimum": 0, "maximum": 99},
            "note": {"type": "string", "maxLength": 12},
        },
        "required": ["mood", "count", "note"],
        "additionalProperties": False,
    }
    for seed in range(3):
        completion = embedded.complete(
            CompletionRequest(
                prompt=SYSTEM + user("Describe your mood as JSON."),
                max_tokens=48,
                constraint=Constraint(json_schema=schema),
                sampling=SamplingParams(temperature=1.0, seed=seed),
            )
        )
        assert completion.constrained_by == "json_schema"
        value = json.loads(completion.text)
        assert schema_violation(value, schema) is None, completion.text


def test_a_grammar_that_forces_everything_is_written_by_the_model_and_verified_in_batches(embedded: EmbeddedBackend) -> None:
    engine = embedded.engine()
    forced_text = '{"function": "send_message", "params": {"message": "hello there"}}'
    grammar = "root ::= " + json.dumps(forced_text)
    completion = embedded.complete(
        CompletionRequest(prompt=SYSTEM + user("Hi"), max_tokens=64, constraint=Constraint(gbnf=grammar))
    )
    assert completion.text == forced_text and completion.finish_reason == "stop"
    # The forced text is a draft: the model samples every position, and where it writes the draft's tokens
    # they come from one batched decode instead of one decode each.
    sampler = engine.grammars.sampler(grammar)
    prompt = engine.rt.tokenize(SYSTEM + user("Hi"), add_special=True)
    try:
        engine.prepare(prompt)
        generation = engine.decoder.generate(max_tokens=64, stop=(), params=GREEDY, grammar=sampler, fast_forward=True)
    finally:
        from llama_cpp import llama_cpp as C

        C.llama_sampler_free(sampler)
    assert generation.text == forced_text
    assert 0 < generation.drafted_tokens < len(generation.tokens)
    # the KV cache holds the prompt and what was written (a draft's rejected tail is gone)
    held = engine.rt.tokens[len(prompt) :]
    assert (
        engine.rt.tokens[: len(prompt)] == prompt
        and held == generation.tokens[: len(held)]
        and len(held) >= len(generation.tokens) - 1
    )


@pytest.mark.parametrize("fast_forward", [True, False])
def test_fast_forward_on_or_off_the_output_satisfies_the_grammar(embedded: EmbeddedBackend, fast_forward: bool) -> None:
    grammar = r"""root ::= "{\"function\": \"" name "\", \"params\": {\"message\": \"" [a-zA-Z ,.!]{1,20} "\"}}"
name ::= "send_message" | "send_note"
"""
    pattern = re.compile(r'\{"function": "(send_message|send_note)", "params": \{"message": "[a-zA-Z ,.!]{1,20}"\}\}')
    previous = embedded.fast_forward
    embedded.fast_forward = fast_forward
    try:
        for seed in range(4):
            completion = embedded.complete(
                CompletionRequest(
                    prompt=SYSTEM + user(USER_LINES[seed]),
                    max_tokens=64,
                    constraint=Constraint(gbnf=grammar),
                    sampling=SamplingParams(temperature=1.0, seed=seed),
                )
            )
            assert pattern.fullmatch(completion.text), completion.text
    finally:
        embedded.fast_forward = previous


def test_an_invalid_grammar_is_a_grammar_error_and_the_backend_keeps_working(embedded: EmbeddedBackend) -> None:
    with pytest.raises(GrammarError, match="unexpected end of input"):
        embedded.complete(CompletionRequest(prompt="Hi", max_tokens=4, constraint=Constraint(gbnf='root ::= "unterminated')))
    with pytest.raises(GrammarError, match="root"):
        embedded.complete(CompletionRequest(prompt="Hi", max_tokens=4, constraint=Constraint(gbnf='answer ::= "yes"')))
    assert (
        embedded.complete(CompletionRequest(prompt=SYSTEM + user("Hi"), max_tokens=3, sampling=GREEDY)).usage.completion_tokens
        > 0
    )


# ---- tokens ----


@pytest.mark.parametrize("text", TOKENIZER_SAMPLES)
def test_token_counts_equal_llama_cpps_tokenizer(embedded: EmbeddedBackend, llama, text: str) -> None:  # type: ignore[no-untyped-def]
    assert embedded.count_tokens(text) == len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def test_usage_counts_the_prompt_with_its_bos_and_the_completion(embedded: EmbeddedBackend, llama) -> None:  # type: ignore[no-untyped-def]
    prompt = SYSTEM + user("Count me.")
    completion = embedded.complete(CompletionRequest(prompt=prompt, max_tokens=5, sampling=GREEDY))
    assert completion.usage.prompt_tokens == len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
    assert completion.usage.prompt_tokens == completion.usage.cached_tokens + (completion.usage.evaluated_tokens or 0)
    assert 0 < completion.usage.completion_tokens <= 5 and completion.usage.exact


# ---- the KV cache ----


def test_a_second_turn_evaluates_only_the_new_tokens(embedded: EmbeddedBackend) -> None:
    first_prompt = SYSTEM + "<|im_start|>system\nSession 1f3c: " + "the user likes tea. " * 30 + "<|im_end|>\n" + user("Hi")
    first = embedded.complete(CompletionRequest(prompt=first_prompt, max_tokens=6, sampling=GREEDY))
    assert first.usage.evaluated_tokens and first.usage.evaluated_tokens > 100  # the new system block was evaluated
    follow_up = "<|im_end|>\n" + user("And what do I like?")
    second = embedded.complete(CompletionRequest(prompt=first_prompt + first.text + follow_up, max_tokens=6, sampling=GREEDY))
    new_tokens = embedded.count_tokens(first.text + follow_up)
    assert second.usage.cached_tokens >= second.usage.prompt_tokens - new_tokens - 1
    assert second.usage.evaluated_tokens is not None and second.usage.evaluated_tokens <= new_tokens + 1
    assert second.usage.prompt_tokens == second.usage.cached_tokens + second.usage.evaluated_tokens


def test_a_side_call_does_not_cost_the_agent_its_prefix(embedded: EmbeddedBackend) -> None:
    agent = SYSTEM + "<|im_start|>system\nCore memory 77a: " + "the user sails on weekends. " * 40 + "<|im_end|>\n"
    embedded.complete(CompletionRequest(prompt=agent + user("Hi"), max_tokens=3, sampling=GREEDY))
    # The summarizer: an unrelated, long prompt that overwrites the live KV cache.
    summary = "<|im_start|>system\nSummarize.<|im_end|>\n<|im_start|>user\n" + "We talked about boats and the sea. " * 40
    side = embedded.complete(
        CompletionRequest(prompt=summary + "<|im_end|>\n<|im_start|>assistant\n", max_tokens=3, sampling=GREEDY)
    )
    assert side.usage.cached_tokens < 10
    back = embedded.complete(CompletionRequest(prompt=agent + user("What do I do on weekends?"), max_tokens=3, sampling=GREEDY))
    assert back.usage.cached_tokens >= embedded.count_tokens(agent)  # restored from the saved state
    assert (
        back.usage.evaluated_tokens is not None
        and back.usage.evaluated_tokens <= embedded.count_tokens(user("What do I do on weekends?")) + 1
    )


# ---- probes ----


def test_check_reports_the_model_the_context_and_the_threads(embedded: EmbeddedBackend, threads: int) -> None:
    status = embedded.check()
    assert status.ok and status.model == "SmolLM2-135M-Instruct.Q4_1"
    assert status.context_window == 8192 == embedded.context_window()  # the default, = SmolLM2's trained context
    assert f"{threads} thread" in status.detail and "trained context 8192" in status.detail
    assert status.endpoint is None and status.line().startswith("✓ in process")


def test_the_chat_template_comes_from_the_gguf(embedded: EmbeddedBackend) -> None:
    template = embedded.chat_template()
    assert template is not None and "<|im_start|>" in template


def test_loading_shows_progress_on_stderr_and_a_smaller_context_is_honoured(
    threads: int, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = EmbeddedBackend(BackendSettings(threads=threads, context_window=512))
    try:
        assert backend.context_window() == 512
        err = capsys.readouterr().err
        assert "loading SmolLM2-135M-Instruct.Q4_1.gguf" in err and "ready in" in err and "context 512 tokens" in err
        again = EmbeddedBackend(BackendSettings(threads=threads, context_window=512))
        assert again.engine() is backend.engine()  # one loaded model per (file, context) in the process
        assert "loading" not in capsys.readouterr().err
        again.close()
    finally:
        backend.close()


def test_a_prompt_longer_than_the_context_is_a_clear_error(threads: int) -> None:
    from memgpt.errors import BackendError

    backend = EmbeddedBackend(BackendSettings(threads=threads, context_window=512, options={"quiet": True}))
    try:
        with pytest.raises(BackendError, match="context window is 512"):
            backend.complete(CompletionRequest(prompt="word " * 700, max_tokens=4))
    finally:
        backend.close()


def test_the_evaluated_prompt_is_kept_on_disk_for_the_next_run(threads: int, _isolated_home) -> None:  # type: ignore[no-untyped-def]
    from memgpt_backend_llamacpp import engine as engines

    settings = BackendSettings(threads=threads, context_window=1024, options={"quiet": True})
    prompt = SYSTEM + "<|im_start|>system\nNotes 5d1e: " + "the user collects stamps. " * 40 + "<|im_end|>\n" + user("Hi")
    first = EmbeddedBackend(settings)
    assert first.complete(CompletionRequest(prompt=prompt, max_tokens=2, sampling=GREEDY)).usage.cached_tokens < 10
    first.close()  # writes the state
    saved = list((_isolated_home / "cache" / "kv").glob("SmolLM2-135M-Instruct.Q4_1-1024-*.kv"))
    assert len(saved) == 1
    assert engines.unload_idle() >= 1  # as if the process had ended

    second = EmbeddedBackend(settings)
    try:
        again = second.complete(CompletionRequest(prompt=prompt, max_tokens=2, sampling=GREEDY))
        assert again.usage.cached_tokens == again.usage.prompt_tokens - 1  # all but the last, whose logits we need
        assert again.usage.evaluated_tokens == 1
    finally:
        second.close()
    saved[0].write_bytes(b"not a state file")  # a damaged file is ignored, not fatal
    engines.unload_idle()
    third = EmbeddedBackend(settings)
    try:
        assert third.complete(CompletionRequest(prompt=prompt, max_tokens=2, sampling=GREEDY)).usage.cached_tokens < 10
    finally:
        third.close()
