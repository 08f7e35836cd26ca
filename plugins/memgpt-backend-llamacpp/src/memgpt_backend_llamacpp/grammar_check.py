"""Validate a GBNF grammar with llama.cpp's own parser before anything samples with it.

llama-cpp-python hands a grammar to llama.cpp unchecked, and a grammar that fails to parse makes
``llama_sampler_init_grammar`` return NULL, which the binding then dereferences: the process dies. Servers
are no better (some ignore a bad grammar and answer unconstrained). So every grammar goes through
``check_gbnf`` first: it runs llama.cpp's parser on its own (no model needed) and turns a rejection into a
``GrammarError`` that quotes llama.cpp's message.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from functools import lru_cache

from memgpt.plugin import GrammarError

# llama.cpp's recursive-descent parser recurses once per nesting level; a pathological grammar could blow
# the C stack (a crash, not an exception). Real grammars nest a handful of levels.
MAX_NESTING = 256

_lock = threading.Lock()


def check_gbnf(text: str) -> None:
    """Raise ``GrammarError`` when llama.cpp's grammar parser rejects ``text``; return quietly otherwise.

    Checks: non-empty, no NUL bytes, bounded nesting, then llama.cpp's parser (syntax, undefined rules, a
    ``root`` rule, left recursion). Token references (``<|eot|>``, ``<[12]>``) need a model's vocabulary and
    are left for the backend that loads one to check.
    """
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("the grammar is empty: a GBNF grammar needs at least a `root ::= ...` rule")
    if "\x00" in text:
        raise GrammarError("the grammar contains a NUL character; remove it")
    _check_nesting(text)
    _check_cached(text)


@lru_cache(maxsize=64)
def _check_cached(text: str) -> None:
    # lru_cache does not cache exceptions, so only grammars that passed are remembered.
    problem = _llama_cpp_rejects(text)
    if problem is not None:
        raise GrammarError(f"llama.cpp rejects the grammar: {problem}")


def _check_nesting(text: str) -> None:
    depth = deepest = 0
    in_literal = in_class = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_literal:
            in_literal = char != '"'
        elif in_class:
            in_class = char != "]"
        elif char == '"':
            in_literal = True
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_NESTING:
        raise GrammarError(f"the grammar nests parentheses {deepest} deep (limit {MAX_NESTING}); flatten it into rules")


def _llama_cpp_rejects(text: str) -> str | None:
    """Run llama.cpp's parser; None when it accepts, else the reason it printed (or a summary)."""
    try:
        import llama_cpp  # heavy: only when a grammar is actually checked
    except ImportError:
        # Core without llama-cpp-python (a server-only install): check what we can; the server parses again.
        return None if re.search(r"^\s*root\s*::=", text, re.MULTILINE) else _summarise("does not contain a 'root' symbol", text)

    with _lock, _capture_native_output() as captured:
        # No vocabulary: the parser and the root / left-recursion checks need none.
        sampler = llama_cpp.llama_sampler_init_grammar(None, text.encode("utf-8"), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
    if sampler:
        return None
    said = " ".join(line.strip() for line in captured.text().splitlines() if line.strip())
    if "no vocab to parse token" in said:
        return None  # token references: valid syntax that only a loaded model can resolve
    return _summarise(said, text)


def _summarise(said: str, text: str) -> str:
    # llama.cpp echoes the whole grammar after the reason; keep the reason and where it happened.
    if "error parsing grammar:" in said:
        reason = said.split("error parsing grammar:", 1)[1].strip()
        echoed = " ".join(line.strip() for line in text.splitlines() if line.strip())
        if echoed and reason.endswith(echoed):
            reason = reason[: -len(echoed)].strip()
        return reason[:300] or "syntax error"
    if "does not contain a 'root' symbol" in said:
        return "there is no `root` rule; the grammar must define `root ::= ...`"
    if "left recursion" in said:
        return 'a rule is left-recursive (it can start with itself); rewrite it with repetition (`x ::= y ("," y)*`)'
    return said[:300] or "the parser refused it (no reason given)"


class _Captured:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self) -> str:
        return "".join(self.parts)


@contextlib.contextmanager
def _capture_native_output() -> Iterator[_Captured]:
    """Collect what llama.cpp prints while parsing: its log callback and raw writes to fd 2."""
    import llama_cpp
    from llama_cpp import _logger

    captured = _Captured()

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        captured.parts.append(text.decode("utf-8", "replace"))

    with tempfile.TemporaryFile() as sink:
        saved_fd = os.dup(2)
        os.dup2(sink.fileno(), 2)
        llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
        try:
            yield captured
        finally:
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sink.seek(0)
            captured.parts.append(sink.read().decode("utf-8", "replace"))
