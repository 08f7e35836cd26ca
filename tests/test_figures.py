"""Every figure the README, docs and plugin READMEs quote is generated from a results file under
bench/results (bench/figures.py): this fails when a quoted passage and its file disagree, when a passage names
a renderer that does not exist, or when its results file is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import figures  # noqa: E402


def test_every_quoted_passage_matches_its_results_file() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "figures.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_renderer_is_used_and_the_docs_quote_figures() -> None:
    used = {m.group("name") for path in figures.documents() for m in figures.BLOCK.finditer(path.read_text(encoding="utf-8"))}
    assert used == set(figures.RENDERERS)


def test_the_check_catches_a_passage_edited_by_hand() -> None:
    readme = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    match = next(figures.BLOCK.finditer(readme))
    edited = readme.replace(match.group(0), match.group(1) + "| made | up |\n" + match.group(4), 1)
    regenerated, problems = figures.regenerate(edited)
    assert problems == [] and regenerated != edited and regenerated == figures.regenerate(readme)[0]


def test_a_missing_results_file_is_reported(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(figures, "RESULTS", ROOT / "bench" / "no-such-results")
    _, problems = figures.regenerate("<!-- figure: memory-edits -->\nold\n<!-- /figure -->\n")
    assert problems and "FileNotFoundError" in problems[0]
