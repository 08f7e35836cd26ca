"""A loaded model shared by every embedded backend of the process, and how a prompt reuses its KV cache.

Loading a GGUF takes seconds to minutes and its memory is large, so the process keeps one ``Engine`` per
(file, context size) and hands it to every ``EmbeddedBackend`` that asks; an engine nobody uses any more is
freed when another model is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from llama_cpp import llama_cpp as C

from memgpt_backend_llamacpp import persist
from memgpt_backend_llamacpp.grammars import GrammarCache
from memgpt_backend_llamacpp.llama_model import LlamaModel
from memgpt_backend_llamacpp.sampling import Decoder
from memgpt_backend_llamacpp.state_cache import StateCache, common_prefix

# Save the live KV state before a prompt discards at least this many of its tokens (and a quarter of it):
# that is a side call (summarizer) or another agent, not the next step of the same conversation.
SAVE_MIN_TOKENS = 256
# Restore a saved state only when it saves re-evaluating at least this many tokens.
RESTORE_MIN_GAIN = 32


class Engine:
    """One model + context, its decoder, compiled grammars and saved states; ``lock`` serialises calls."""

    def __init__(
        self, runtime: LlamaModel, *, state_cache_bytes: int, persist_dir: Path | None = None, persist_max_bytes: int = 0
    ) -> None:
        self.rt = runtime
        self.state_path = persist.state_file(persist_dir, runtime) if persist_dir is not None else None
        self.persist_max_bytes = persist_max_bytes
        if self.state_path is not None:
            persist.load(runtime, self.state_path)  # the first prompt then reuses what the last run evaluated
        self.decoder = Decoder(runtime)
        self.grammars = GrammarCache(runtime.vocab)
        self.states = StateCache(state_cache_bytes)
        self.lock = threading.RLock()
        self.users = 0
        self.count_tokens = lru_cache(maxsize=8192)(self._count_tokens)

    def _count_tokens(self, text: str) -> int:
        # Like llama-server's /tokenize: no BOS, special tokens parsed (prompts contain <|im_start|> etc.).
        return len(self.rt.tokenize(text, add_special=False, parse_special=True))

    def set_threads(self, n_threads: int) -> None:
        if n_threads != self.rt.n_threads:
            C.llama_set_n_threads(self.rt.ctx, n_threads, n_threads)
            self.rt.n_threads = n_threads

    def prepare(self, prompt: list[int]) -> tuple[int, int]:
        """Make the KV cache hold ``prompt`` with fresh logits; returns (reused, evaluated) prompt tokens."""
        rt = self.rt
        shared = common_prefix(rt.tokens, prompt)
        saved_len, saved = self.states.best(prompt)
        discarded = len(rt.tokens) - shared
        restore = saved is not None and saved_len >= shared + RESTORE_MIN_GAIN
        if discarded >= SAVE_MIN_TOKENS and discarded * 4 >= len(rt.tokens):
            self.states.put(rt.tokens, rt.save_state())
        if restore and saved is not None:
            shared = saved_len if rt.load_state(saved.tokens, saved.state) else 0
        # The last prompt token is always evaluated: sampling needs its logits.
        shared = min(shared, len(prompt) - 1)
        rt.truncate(shared)
        rt.decode(prompt[shared:])
        return shared, len(prompt) - shared

    def persist(self) -> bool:
        """Write the live KV state for the next run (when persistence is on); True when written."""
        if self.state_path is None:
            return False
        with self.lock:
            return persist.save(self.rt, self.state_path, self.persist_max_bytes)

    def close(self) -> None:
        self.grammars.close()
        self.states.clear()
        self.rt.close()


_engines: dict[tuple[Path, int | None], Engine] = {}
_registry_lock = threading.Lock()


def acquire(
    path: Path,
    *,
    n_ctx: int | None,
    n_threads: int,
    state_cache_bytes: int,
    progress: Callable[[float], None] | None,
    persist_dir: Path | None = None,
    persist_max_bytes: int = 0,
) -> Engine:
    """The process's engine for ``path`` at ``n_ctx`` (None = the default size), loading it if needed.

    ``progress`` is called with the loaded fraction; if it also has ``start()`` and ``done(detail)``, they
    are called around an actual load (not when the engine is already loaded).
    """
    key = (path, n_ctx)
    with _registry_lock:
        engine = _engines.get(key)
        if engine is None:
            for other_key in [k for k, other in _engines.items() if other.users == 0]:
                _engines.pop(other_key).close()  # one model at a time: free the idle ones first
            if hasattr(progress, "start"):
                progress.start()  # type: ignore[union-attr]  # checked by hasattr
            runtime = LlamaModel(path, n_ctx=n_ctx, n_threads=n_threads, progress=progress)
            engine = Engine(
                runtime, state_cache_bytes=state_cache_bytes, persist_dir=persist_dir, persist_max_bytes=persist_max_bytes
            )
            _engines[key] = engine
            if hasattr(progress, "done"):
                progress.done(f"context {runtime.n_ctx} tokens")  # type: ignore[union-attr]  # checked by hasattr
        engine.users += 1
    with engine.lock:
        engine.set_threads(n_threads)
    return engine


def release(engine: Engine) -> None:
    """Stop using ``engine`` (saving its KV state when persistence is on); it stays loaded for the next
    backend until another model needs the room."""
    engine.persist()
    with _registry_lock:
        engine.users = max(0, engine.users - 1)


def unload_idle() -> int:
    """Free every engine no backend uses (their KV states were saved at release); how many were freed."""
    with _registry_lock:
        idle = [key for key, engine in _engines.items() if engine.users == 0]
        for key in idle:
            _engines.pop(key).close()
    return len(idle)
