"""Keep the evaluated prompt across runs: the KV state is written at close and read back at the next load.

An agent's prompt starts with the same ~1.5k tokens every run (system text, function docs, core memory).
Evaluating them cold takes seconds with SmolLM2 on one core and minutes with an 8B model on a laptop CPU;
reading the saved state back takes milliseconds (``bench/bench_embedded.py`` prints both). Even another
agent gains: the system text and function docs are shared.

One file per model file (path, size and mtime, so a replaced GGUF is never matched) and context size, under
``$MEMGPT_HOME/cache/kv/``, written atomically. The file is ours, not llama.cpp's: a header (magic, format,
model identity, context size, token count, payload size and SHA-256) before the tokens and llama.cpp's state
bytes. Everything is checked before llama.cpp sees the state, because llama.cpp aborts the process on a
truncated state file (a full disk, a power cut); a file that fails a check is deleted with one warning line,
and the run evaluates its prompt instead.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
from pathlib import Path

from llama_cpp import llama_cpp as C

from memgpt_backend_llamacpp.llama_model import SEQ, LlamaModel

log = logging.getLogger(__name__)

#: Not worth a file below this many tokens (a prompt that short evaluates in a moment).
MIN_TOKENS = 256


def state_file(directory: Path, runtime: LlamaModel) -> Path:
    """Where the KV state of ``runtime``'s model at its context size is kept."""
    stat = runtime.path.stat()
    identity = f"{runtime.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{runtime.n_ctx}"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return directory / f"{runtime.path.stem}-{runtime.n_ctx}-{digest}.kv"


MAGIC = b"MEMGPT-KV\n"
FORMAT = 1


def _identity(runtime: LlamaModel) -> dict[str, object]:
    stat = runtime.path.stat()
    return {"model": str(runtime.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "n_ctx": runtime.n_ctx}


def save(runtime: LlamaModel, path: Path, max_bytes: int) -> bool:
    """Write the live KV state (and the tokens it holds) to ``path``; False when skipped or refused."""
    tokens = runtime.tokens
    if len(tokens) < MIN_TOKENS:
        return False
    if C.llama_state_seq_get_size(runtime.ctx, SEQ) > max_bytes:
        return False
    state = runtime.save_state()
    packed = array.array("i", tokens).tobytes()
    header = {
        "format": FORMAT,
        **_identity(runtime),
        "tokens": len(tokens),
        "state_bytes": len(state),
        "sha256": hashlib.sha256(packed + state).hexdigest(),
    }
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with partial.open("wb") as handle:
            handle.write(MAGIC + json.dumps(header).encode("ascii") + b"\n" + packed + state)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)  # never leave a half-written state where the next run looks
        return True
    except OSError as err:
        log.warning("memgpt: could not save the KV state to %s: %s", path, err.strerror or err)
        return False
    finally:
        partial.unlink(missing_ok=True)


def _discard(path: Path, why: str) -> int:
    log.warning("memgpt: discarded the saved KV state %s (%s); this run evaluates its prompt afresh", path, why)
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    return 0


def load(runtime: LlamaModel, path: Path) -> int:
    """Fill the (empty) KV cache from ``path``; the number of tokens restored, 0 when none. A file that is
    damaged, foreign or refused is deleted with one warning line."""
    if runtime.tokens or not path.is_file():
        return 0
    try:
        data = path.read_bytes()
    except OSError as err:
        return _discard(path, f"unreadable: {err.strerror or err}")
    if not data.startswith(MAGIC):
        return _discard(path, "not a memgpt KV state file")
    line_end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : line_end]) if line_end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return _discard(path, "unknown header")
    if any(header.get(key) != value for key, value in _identity(runtime).items()):
        return _discard(path, "written for another model file or context size")
    body = data[line_end + 1 :]
    n_tokens, state_bytes = header.get("tokens"), header.get("state_bytes")
    if not isinstance(n_tokens, int) or not isinstance(state_bytes, int) or len(body) != 4 * n_tokens + state_bytes:
        return _discard(
            path, f"truncated or padded: {len(body)} bytes where the header says {header.get('tokens')} tokens + {state_bytes}"
        )
    if not 0 < n_tokens <= runtime.n_ctx or hashlib.sha256(body).hexdigest() != header.get("sha256"):
        return _discard(path, "checksum mismatch")
    tokens = array.array("i")
    tokens.frombytes(body[: 4 * n_tokens])
    if not runtime.load_state(tokens.tolist(), body[4 * n_tokens :]):
        return _discard(path, "llama.cpp refused it")
    return n_tokens
