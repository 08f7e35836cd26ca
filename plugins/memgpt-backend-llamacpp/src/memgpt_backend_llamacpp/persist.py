"""Keep the evaluated prompt across runs: the KV state is written at close and read back at the next load.

An agent's prompt starts with the same ~1.5k tokens every run (system text, function docs, core memory).
Evaluating them cold takes seconds with SmolLM2 on one core and minutes with an 8B model on a laptop CPU;
reading the saved state back takes milliseconds (``bench/bench_embedded.py`` prints both). Even another
agent gains: the system text and function docs are shared.

One file per model file (path, size and mtime, so a replaced GGUF is never matched) and context size, under
``$MEMGPT_HOME/cache/kv/``, written atomically. A state file llama.cpp refuses is ignored and replaced.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path

from llama_cpp import llama_cpp as C

from memgpt_backend_llamacpp.runtime import SEQ, LlamaRuntime

log = logging.getLogger(__name__)

#: Not worth a file below this many tokens (a prompt that short evaluates in a moment).
MIN_TOKENS = 256


def state_file(directory: Path, runtime: LlamaRuntime) -> Path:
    """Where the KV state of ``runtime``'s model at its context size is kept."""
    stat = runtime.path.stat()
    identity = f"{runtime.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{runtime.n_ctx}"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return directory / f"{runtime.path.stem}-{runtime.n_ctx}-{digest}.kv"


def save(runtime: LlamaRuntime, path: Path, max_bytes: int) -> bool:
    """Write the live KV state (and the tokens it holds) to ``path``; False when skipped or refused."""
    tokens = runtime.tokens
    if len(tokens) < MIN_TOKENS:
        return False
    if C.llama_state_seq_get_size(runtime.ctx, SEQ) > max_bytes:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    array = (C.llama_token * len(tokens))(*tokens)
    try:
        written = C.llama_state_seq_save_file(runtime.ctx, str(partial).encode("utf-8"), SEQ, array, len(tokens))
        if not written:
            return False
        os.replace(partial, path)  # never leave a half-written state where the next run looks
        return True
    except OSError as err:
        log.warning("could not save the KV state to %s: %s", path, err)
        return False
    finally:
        partial.unlink(missing_ok=True)


def load(runtime: LlamaRuntime, path: Path) -> int:
    """Fill the (empty) KV cache from ``path``; the number of tokens restored, 0 when none."""
    if runtime.tokens or not path.is_file():
        return 0
    capacity = runtime.n_ctx
    tokens = (C.llama_token * capacity)()
    count = ctypes.c_size_t(0)
    read = C.llama_state_seq_load_file(runtime.ctx, str(path).encode("utf-8"), SEQ, tokens, capacity, ctypes.byref(count))
    if not read or count.value == 0 or count.value > capacity:
        C.llama_memory_seq_rm(runtime.memory, SEQ, -1, -1)
        log.info("ignoring the KV state in %s (llama.cpp refused it)", path)
        return 0
    runtime.tokens = list(tokens[: count.value])
    return count.value
