"""Suite files and answer matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from memgpt.errors import ConfigError
from memgpt.eval.scoring import mentions, normalise
from memgpt.eval.suite import builtin_suites, load_suite, parse_suite


def test_normalise() -> None:
    assert normalise("Québec,  CITY!") == "quebec city"
    assert normalise("It's the 14th-of-March.") == "it s the 14th of march"


@pytest.mark.parametrize(
    ("text", "answer", "found"),
    [
        ("Your surname is QUENNELL.", "Quennell", True),
        ("It is the 14th of March!", "14th of March", True),
        ("persimmons", "persimmon", False),  # whole words: a suite lists the forms it accepts
        ("Quennellson", "Quennell", False),
        ("anything", "", False),
        ("Ты любишь чай", "чай", True),
    ],
)
def test_mentions(text: str, answer: str, found: bool) -> None:
    assert mentions(text, answer) is found


def test_builtin_suites_load() -> None:
    for name in builtin_suites():
        suite = load_suite(name)
        assert suite.checks >= 2 and suite.name == name


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "the top level must be an object"),
        ({"name": "x", "sessions": []}, "`sessions` must be a non-empty list"),
        ({"name": "x", "sessions": [{"turns": ["hi"]}]}, "no turn has a check"),
        ({"name": "x", "sessions": [{"turns": [{"say": "hi", "expect": 3}]}]}, "expect must be a string or a list"),
        ({"name": "x", "sessions": [{"turns": [{"say": "hi", "robust": True, "colour": 1}]}]}, "unknown field(s) colour"),
        ({"name": "x", "documents": [{"name": "../a.txt", "text": "t"}], "sessions": [{"turns": [{"say": "q", "robust": True}]}]},
         "must be a plain file name"),
        ({"name": "x", "context_window": 12, "sessions": [{"turns": [{"say": "q", "robust": True}]}]}, "context_window must be"),
    ],
)  # fmt: skip
def test_malformed_suites_say_where(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^mine: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_suite(data, "mine")


def test_file_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match=r"is not valid JSON: .* line 1"):
        load_suite(str(broken))
    with pytest.raises(ConfigError, match="cannot read suite file"):
        load_suite(str(tmp_path / "absent.json"))


def test_yaml_suite(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nsessions:\n  - turns:\n      - say: hello\n        expect: [hi]\n")
    suite = load_suite(str(mine))
    assert suite.sessions[0].turns[0].check is not None and suite.sessions[0].turns[0].check.expect == ("hi",)
