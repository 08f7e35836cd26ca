"""Test helpers for grammars: an independent GBNF reader that turns a (non-recursive) grammar into a Python
regular expression, so tests can ask "does this exact text match the grammar?" without sampling; and
``gbnf_ok``, llama.cpp's own verdict on a grammar.

Our grammars are regular (no rule refers back to itself), so inlining every rule gives one regex. The
reader follows llama.cpp's GBNF syntax (literals, classes, groups, ``| ? * + {m} {m,} {m,n}``) and shares
no code with the emitter under test.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "/": "/"}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek() in (" ", "\t", "\n"):
            self.pos += 1

    def char(self) -> str:
        """One (possibly escaped) character inside a literal or class."""
        c = self.text[self.pos]
        self.pos += 1
        if c != "\\":
            return c
        e = self.text[self.pos]
        self.pos += 1
        if e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            code = int(self.text[self.pos : self.pos + n], 16)
            self.pos += n
            return chr(code)
        return _ESCAPES[e]


def _parse_rules(grammar: str) -> dict[str, str]:
    rules: dict[str, str] = {}
    for line in grammar.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, body = line.split("::=", 1)
        assert name.strip() not in rules, f"rule {name.strip()} defined twice"
        rules[name.strip()] = body
    return rules


def _class_char(c: str) -> str:
    return f"\\U{ord(c):08x}"


def gbnf_to_regex(grammar: str) -> re.Pattern[str]:
    rules = _parse_rules(grammar)
    compiling: set[str] = set()

    @functools.cache
    def rule(name: str) -> str:
        assert name in rules, f"undefined rule {name}"
        assert name not in compiling, f"recursive rule {name}: not a regular grammar"
        compiling.add(name)
        reader = _Reader(rules[name])
        out = alternation(reader)
        reader.skip_space()
        assert reader.pos == len(reader.text), f"trailing text in rule {name}: {reader.text[reader.pos :]!r}"
        compiling.discard(name)
        return out

    def alternation(r: _Reader) -> str:
        options = [sequence(r)]
        while True:
            r.skip_space()
            if r.peek() != "|":
                return "(?:" + "|".join(options) + ")"
            r.pos += 1
            options.append(sequence(r))

    def sequence(r: _Reader) -> str:
        items = []
        while True:
            r.skip_space()
            c = r.peek()
            if c in ("", "|", ")"):
                return "".join(items)
            items.append(postfix(r, atom(r)))

    def atom(r: _Reader) -> str:
        c = r.peek()
        if c == '"':
            r.pos += 1
            chars = []
            while r.peek() != '"':
                chars.append(r.char())
            r.pos += 1
            return "(?:" + re.escape("".join(chars)) + ")"
        if c == "[":
            r.pos += 1
            negate = r.peek() == "^"
            if negate:
                r.pos += 1
            parts = []
            while r.peek() != "]":
                low = r.char()
                if r.peek() == "-" and r.text[r.pos + 1] != "]":
                    r.pos += 1
                    parts.append(_class_char(low) + "-" + _class_char(r.char()))
                else:
                    parts.append(_class_char(low))
            r.pos += 1
            return "[" + ("^" if negate else "") + "".join(parts) + "]"
        if c == "(":
            r.pos += 1
            inner = alternation(r)
            r.skip_space()
            assert r.peek() == ")", "unclosed group"
            r.pos += 1
            return inner
        match = re.compile(r"[a-zA-Z0-9-]+").match(r.text, r.pos)
        assert match, f"unexpected {r.text[r.pos : r.pos + 20]!r}"
        r.pos = match.end()
        return "(?:" + rule(match.group()) + ")"

    def postfix(r: _Reader, item: str) -> str:
        while True:
            c = r.peek()
            if c in "?*+" and c:
                r.pos += 1
                item = f"(?:{item}){c}"
            elif c == "{":
                end = r.text.index("}", r.pos)
                item = f"(?:{item}){{{r.text[r.pos + 1 : end]}}}"
                r.pos = end + 1
            else:
                return item

    return re.compile(rule("root"), re.DOTALL)


def gbnf_ok(grammar: str) -> None:
    """llama.cpp's parser accepts ``grammar`` (``check_gbnf`` raises ``GrammarError`` otherwise)."""
    from memgpt_backend_llamacpp.grammar_check import check_gbnf

    check_gbnf(grammar)


@pytest.fixture(scope="session")
def to_regex() -> Any:
    return gbnf_to_regex


@pytest.fixture(scope="session")
def llama_accepts() -> Any:
    return gbnf_ok
