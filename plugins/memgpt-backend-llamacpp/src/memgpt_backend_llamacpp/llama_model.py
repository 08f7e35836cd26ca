"""One GGUF loaded in process: tokens in, logits out, and a KV cache that keeps what it already evaluated.

Written on llama-cpp-python's low-level C API (``llama_cpp.llama_cpp``) rather than the high-level ``Llama``
class, so that we control model loading (a progress callback, no stdout/stderr juggling), the KV cache
(the token list it holds, saving and restoring a sequence's state) and the sampling loop (see
``sampling.py``). Everything here is single-threaded by design: the backend serialises calls with a lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp as _llama_pkg  # noqa: F401  (loads the shared library and installs the log callback)
import numpy as np
from llama_cpp import _logger
from llama_cpp import llama_cpp as C

from memgpt.plugin import BackendError, ModelLoadError

GGUF_MAGIC = b"GGUF"
SEQ = 0  # the one sequence this runtime uses
# Default context when none is configured: enough for MemGPT's ~1.5k-token system prompt plus a long
# conversation, and small enough that the KV cache of a 7-8B model fits in a laptop's memory.
DEFAULT_N_CTX = 8192

_backend_ready = False
_backend_lock = threading.Lock()


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            _logger.set_verbose(False)  # llama.cpp's own load chatter stays quiet; errors still show
            C.llama_backend_init()
            _backend_ready = True


def check_gguf_header(path: Path) -> None:
    """Refuse a file that is not GGUF before llama.cpp sees it, with a message naming the path."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if head != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF model file (it starts with {head!r}, not b'GGUF'); "
            "give the path of a .gguf file (convert other formats with llama.cpp's convert_hf_to_gguf.py)"
        )


class LlamaModel:
    """A loaded model and one context; ``tokens`` is exactly what the context's KV cache holds.

    ``prepare(prompt)`` makes the KV cache hold the prompt, evaluating only what differs from what it held,
    and returns how many prompt tokens were reused and evaluated.
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int | None,
        n_threads: int,
        n_batch: int = 512,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        _init_backend()
        check_gguf_header(path)
        self.path = path
        self.n_threads = n_threads
        self.model: ctypes.c_void_p | None = self._load_model(path, progress)
        self.vocab = C.llama_model_get_vocab(self.model)
        self.n_ctx_train = int(C.llama_model_n_ctx_train(self.model))
        self.n_vocab = int(C.llama_vocab_n_tokens(self.vocab))
        trained = self.n_ctx_train or DEFAULT_N_CTX
        # Never beyond what the model was trained on: past it, quality collapses without warning.
        self.n_ctx = max(256, min(n_ctx or DEFAULT_N_CTX, trained))
        self.n_batch = min(n_batch, self.n_ctx)
        self.ctx: ctypes.c_void_p | None = self._new_context()
        self.memory = C.llama_get_memory(self.ctx)
        self.batch = C.llama_batch_init(self.n_batch, 0, 1)
        self.tokens: list[int] = []
        self.pieces: list[bytes] = [self._piece(t) for t in range(self.n_vocab)]
        self.add_bos = bool(C.llama_vocab_get_add_bos(self.vocab))
        self.eos = int(C.llama_vocab_eos(self.vocab))
        self.eog = frozenset(t for t in range(self.n_vocab) if C.llama_vocab_is_eog(self.vocab, t))

    # -- loading -----------------------------------------------------------------------------------

    def _load_model(self, path: Path, progress: Callable[[float], None] | None) -> ctypes.c_void_p:
        params = C.llama_model_default_params()
        params.n_gpu_layers = 0

        @C.llama_progress_callback
        def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
            if progress is not None:
                progress(float(fraction))
            return True  # keep loading

        if progress is not None:
            params.progress_callback = on_progress
        model = C.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {path}: the GGUF file is corrupt, truncated, or uses an architecture "
                "this llama.cpp build does not know; re-download it or pick another file"
            )
        return model

    def _new_context(self) -> ctypes.c_void_p:
        params = C.llama_context_default_params()
        params.n_ctx = self.n_ctx
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        params.n_seq_max = 1
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads
        params.no_perf = True
        ctx = C.llama_init_from_model(self.model, params)
        if not ctx:
            C.llama_model_free(self.model)
            raise ModelLoadError(f"llama.cpp could not create a {self.n_ctx}-token context for {self.path} (out of memory?)")
        return ctx

    # -- vocabulary --------------------------------------------------------------------------------

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = C.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n > 64:
            buf = ctypes.create_string_buffer(n)
            n = C.llama_token_to_piece(self.vocab, token, buf, n, 0, False)
        return buf.raw[: max(n, 0)]

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        out = (C.llama_token * capacity)()
        n = C.llama_tokenize(self.vocab, data, len(data), out, capacity, add_special, parse_special)
        if n < 0:  # buffer too small: llama.cpp says how many it needs
            capacity = -n
            out = (C.llama_token * capacity)()
            n = C.llama_tokenize(self.vocab, data, len(data), out, capacity, add_special, parse_special)
        if n < 0:
            raise BackendError(f"llama.cpp could not tokenize a {len(data)}-byte text")
        return list(out[:n])

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        pieces = self.pieces
        return b"".join(pieces[t] for t in tokens)

    def metadata(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = C.llama_model_meta_val_str(self.model, key.encode("utf-8"), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        C.llama_model_desc(self.model, buf, 256)
        return buf.value.decode("utf-8", "replace")

    # -- the KV cache --------------------------------------------------------------------------------

    def truncate(self, n: int) -> None:
        """Forget everything after the first ``n`` tokens: from ``tokens`` and from the KV cache, which may hold
        more than ``tokens`` says when a decode was interrupted (Ctrl-C) after llama.cpp stored it."""
        C.llama_memory_seq_rm(self.memory, SEQ, n, -1)
        del self.tokens[n:]

    def decode(self, tokens: Sequence[int]) -> None:
        """Append ``tokens`` to the KV cache; logits are kept for the last one only."""
        self._decode(tokens, every_logit=False)

    def decode_all(self, tokens: Sequence[int]) -> list[np.ndarray]:
        """Append ``tokens`` (at most one batch) keeping the logits after each: row ``i`` follows ``tokens[i]``.
        The rows are views, valid until the next decode."""
        if len(tokens) > self.n_batch:
            raise BackendError(f"decode_all takes at most {self.n_batch} tokens, not {len(tokens)}")
        self._decode(tokens, every_logit=True)
        return [np.ctypeslib.as_array(C.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)) for i in range(len(tokens))]

    def _decode(self, tokens: Sequence[int], *, every_logit: bool) -> None:
        if len(self.tokens) + len(tokens) > self.n_ctx:
            raise BackendError(
                f"the context window is full ({len(self.tokens)} + {len(tokens)} tokens > {self.n_ctx}); "
                "shorten the prompt or raise the context window"
            )
        batch = self.batch
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            n_past = len(self.tokens)
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = n_past + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = SEQ
                batch.logits[i] = every_logit
            batch.logits[len(chunk) - 1] = True
            try:
                rc = C.llama_decode(self.ctx, batch)
            except BaseException:  # Ctrl-C between llama.cpp storing the chunk and `tokens` recording it
                C.llama_memory_seq_rm(self.memory, SEQ, n_past, -1)
                raise
            if rc != 0:
                # A failed decode may leave part of the chunk in the cache: drop it so `tokens` stays true.
                C.llama_memory_seq_rm(self.memory, SEQ, n_past, -1)
                raise BackendError(f"llama_decode failed with code {rc} at position {n_past}")
            self.tokens.extend(chunk)

    def logits(self) -> ctypes.POINTER(ctypes.c_float):  # type: ignore[valid-type]
        """Logits of the last decoded token (valid until the next decode)."""
        return C.llama_get_logits_ith(self.ctx, -1)

    def save_state(self) -> bytes:
        size = C.llama_state_seq_get_size(self.ctx, SEQ)
        buf = (ctypes.c_uint8 * size)()
        written = C.llama_state_seq_get_data(self.ctx, buf, size, SEQ)
        return bytes(buf[:written])

    def load_state(self, tokens: Sequence[int], state: bytes) -> bool:
        """Replace the KV cache with a saved one; False (and an empty cache) when llama.cpp refuses it."""
        C.llama_memory_seq_rm(self.memory, SEQ, -1, -1)
        self.tokens = []
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if C.llama_state_seq_set_data(self.ctx, buf, len(state), SEQ) == 0:
            C.llama_memory_seq_rm(self.memory, SEQ, -1, -1)
            return False
        self.tokens = list(tokens)
        return True

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            C.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            C.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            C.llama_model_free(self.model)
            self.model = None
