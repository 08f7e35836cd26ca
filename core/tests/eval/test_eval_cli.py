"""`memgpt eval` from the command line: the scoreboard, --json / --out, one-line errors, the chart note."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memgpt.cli.app import get_app
from memgpt.contract.backend import BackendSpec
from memgpt.contract.types import Completion, CompletionRequest
from memgpt.eval import chart
from memgpt.plugins import get_registry
from memgpt.testing.scripted import ScriptedBackend, call


class Polite(ScriptedBackend):
    """Answers every step with one send_message; never remembers anything."""

    def complete(self, request: CompletionRequest) -> Completion:
        self.add(call("send_message", message="Hello there."))
        return super().complete(request)


class Down(ScriptedBackend):
    def complete(self, request: CompletionRequest) -> Completion:
        from memgpt.errors import BackendError

        raise BackendError("cannot reach http://127.0.0.1:9 (connection refused)", endpoint="http://127.0.0.1:9")


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = get_registry()
    for name, cls in (("polite", Polite), ("down", Down)):
        spec = BackendSpec(name=name, factory=lambda settings, c=cls: c(context_window=8192), needs_endpoint=False)
        monkeypatch.setitem(registry.backends, name, spec)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(get_app(), ["eval", *args])


def test_scoreboard_json_and_results_file(backends: None, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = invoke("--backend", "polite", "--suite", "robustness", "--wrappers", "chatml-grammar,llama3-grammar",
                    "--json", "--out", str(out), "--no-chart")  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert json.loads(out.read_text()) == document
    rows = {r["wrapper"]: r for r in document["scoreboard"]}
    assert set(rows) == {"chatml-grammar", "llama3-grammar"}
    assert all(r["success"] == 1.0 and r["checks"] == 6 and r["valid_call_rate"] == 1.0 for r in rows.values())
    assert document["backend"] == "polite" and len(document["runs"]) == 2


def test_table_when_piped(backends: None) -> None:
    result = invoke("--backend", "polite", "--suite", "retention", "--no-chart")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split("\t")[:3] == ["wrapper", "suite", "success"]
    assert row.split("\t")[2] == "0% (0/3)"  # says hello, remembers nothing


def test_backend_down_is_one_line_per_error(backends: None) -> None:
    result = invoke("--backend", "down", "--suite", "robustness", "--no-chart")
    assert result.exit_code == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error in")]
    assert errors == ["error in robustness with chatml-grammar (6 turns): cannot reach http://127.0.0.1:9 (connection refused)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope"], "Error: no suite named 'nope'"),
        (["--wrappers", "no-such-wrapper"], "Error: "),
        (["--backend", "no-such-backend"], "Error: "),
        (["--wrappers", " , "], "Error: --wrappers needs names"),
    ],
)
def test_bad_input_is_one_line(backends: None, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_bad_suite_file_is_one_line(backends: None, tmp_path: Path) -> None:
    bad = tmp_path / "mine.json"
    bad.write_text('{"name": "mine", "sessions": [{"turns": [{"say": "hi", "use": ["telepathy"]}]}]}')
    result = invoke("--backend", "polite", "--suite", str(bad))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {bad}: sessions[0].turns[0].use names telepathy; known: archival_memory_insert, archival_memory_search, "
        "conversation_search, conversation_search_date, core_memory"
    )


def test_own_suite_file(backends: None, tmp_path: Path) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"name": "mine", "sessions": [{"turns": [{"say": "Say hello", "expect": "hello"}]}]}))
    result = invoke("--backend", "polite", "--suite", str(mine), "--json", "--no-chart")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["scoreboard"]
    assert row["suite"] == "mine" and row["success"] == 1.0


def test_chart_written_or_missing_said(backends: None, tmp_path: Path) -> None:
    png = tmp_path / "board.png"
    result = invoke("--backend", "polite", "--suite", "robustness", "--chart", str(png))
    assert result.exit_code == 0, result.output
    if chart.available():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"chart: {png}" in result.stdout
    else:
        assert not png.exists()
        assert "chart not written: matplotlib is not installed (pip install 'memgpt[eval]')" in result.stderr
