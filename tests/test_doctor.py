"""``memgpt doctor`` / ``memgpt configure --check`` against servers that really generate: the native
llama-server, the dialect test servers (one of them told to ignore the constraint), the in-process model, a
port nothing listens on, and what a person sees in a terminal."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memgpt.contract import BackendSettings
from memgpt.doctor import doctor
from memgpt.plugins import get_registry

ROOT = Path(__file__).resolve().parent.parent

# The llamacpp plugin's session fixture: one native llama-server (SmolLM2, context 4096, one slot).
_spec = importlib.util.spec_from_file_location(
    "_llamacpp_test_fixtures", ROOT / "plugins/memgpt-backend-llamacpp/tests/conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_fixtures)
llama_server = _fixtures.llama_server

DIALECT_BACKENDS = ("koboldcpp", "webui", "lmstudio", "vllm")


def memgpt(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGPT_HOME": str(home), "COLUMNS": "120", "MEMGPT_THREADS": os.environ.get("MEMGPT_THREADS", "1")}
    env.pop("MEMGPT_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "memgpt", *args], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout)


def probes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["kind"]: p for p in report["constraints"]}


@pytest.mark.server
@pytest.mark.model
def test_real_llama_server_passes_every_check(llama_server: Any, tmp_path: Path) -> None:
    result = memgpt("doctor", "--backend", "llamacpp", "--model-endpoint", llama_server.url, "--json", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result)
    assert report["ok"] and report["reachable"] and report["problems"] == []
    assert "SmolLM2" in (report["model"] or "")
    assert report["context_window"] == 4096 and report["context_source"] == "backend"
    assert report["tokenizer"] == "exact" and report["tokens_cross_checked"], report["tokenizer_detail"]
    found = probes(report)
    assert found["gbnf"]["verdict"] == "honoured" and found["gbnf"]["declared"]
    assert found["json_schema"]["verdict"] == "honoured"
    assert report["constraint_used"] == "gbnf" and report["constraint_honoured"] == "gbnf"


@pytest.mark.server
@pytest.mark.model
def test_configured_context_larger_than_the_servers_is_a_problem_with_its_fix(llama_server: Any, tmp_path: Path) -> None:
    configured = memgpt(
        "configure",
        "--yes",
        "--backend",
        "llamacpp",
        "--model-endpoint",
        llama_server.url,
        "--context-window",
        "8192",
        home=tmp_path,
    )
    assert configured.returncode == 0, configured.stderr
    result = memgpt("configure", "--check", home=tmp_path)  # the configured server, no flags
    assert result.returncode == 1
    assert_one_line_error(result)
    assert "config says 8192 tokens but the backend runs with 4096" in result.stdout
    assert "fix: memgpt configure --backend llamacpp --context-window 4096" in result.stdout
    assert "constraint  gbnf (used): honoured" in result.stdout


@pytest.mark.model
@pytest.mark.parametrize("name", DIALECT_BACKENDS)
def test_dialect_servers(name: str, dialect_server: Callable[..., Any]) -> None:
    server = dialect_server(name)
    spec = get_registry().backend(name)
    report = doctor(spec, BackendSettings(endpoint=server.url))
    assert report.reachable, report.reachable_detail
    assert report.model
    declared = spec.capabilities.constraints
    by_kind = {p.kind: p for p in report.constraints}
    assert set(by_kind) == {"gbnf", "json_schema"}
    for kind in declared:
        assert by_kind[kind].verdict == "honoured", by_kind[kind]
    for kind in set(by_kind) - set(declared):  # a kind the backend does not send cannot be honoured
        assert by_kind[kind].verdict == "ignored" and not by_kind[kind].declared
    assert report.constraint_used == declared[0]
    assert report.tokenizer == ("exact" if spec.capabilities.tokenizer else "estimated")
    if spec.capabilities.context_probe:
        assert report.context_window == 4096 and report.context_source == "backend"
    else:  # webui does not report its context: a warning with the fix, not a failure
        assert report.context_source == "assumed"
        assert [p.severity for p in report.problems if p.check == "context"] == ["warning"]
        assert "--context-window" in next(p.fix for p in report.problems if p.check == "context")
    assert report.ok, report.problems
    # the probe really carried the constraint, in the dialect's own field
    sent = [r.json for r in server.requests if r.method == "POST" and isinstance(r.json, dict) and "prompt" in r.json]
    assert sent and any(
        v for r in sent for k, v in r.items() if k in ("grammar", "grammar_string", "response_format", "structured_outputs")
    )


@pytest.mark.model
def test_a_server_that_ignores_the_constraint_is_caught(dialect_server: Callable[..., Any], tmp_path: Path) -> None:
    server = dialect_server("koboldcpp")
    server.inject("ignore_constraint", times=10)
    result = memgpt("doctor", "--backend", "koboldcpp", "--model-endpoint", server.url, "--json", home=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result)
    report = report_of(result)
    assert report["reachable"] and not report["ok"]
    gbnf = probes(report)["gbnf"]
    assert gbnf["verdict"] == "ignored" and gbnf["declared"]
    [problem] = [p for p in report["problems"] if p["severity"] == "problem"]
    assert problem["check"] == "constraint" and "did not apply it" in problem["problem"]
    assert "update the server" in problem["fix"]
    assert report["constraint_honoured"] is None
    # the grammar was sent (the server dropped it), so the probe is what caught it, not the capabilities
    assert any(isinstance(r.json, dict) and r.json.get("grammar") for r in server.requests)


@pytest.mark.model
def test_an_http_error_on_the_constrained_request_is_a_failed_probe(dialect_server: Callable[..., Any]) -> None:
    server = dialect_server("vllm")
    server.inject("http_500", times=20)  # every attempt of every probe
    report = doctor(get_registry().backend("vllm"), BackendSettings(endpoint=server.url, retries=0))
    assert report.reachable and not report.ok
    gbnf = next(p for p in report.constraints if p.kind == "gbnf")
    assert gbnf.verdict == "failed" and "500" in gbnf.detail
    assert "\n" not in gbnf.detail


def test_unreachable_endpoint_is_one_problem_and_one_error_line(dead_endpoint: str, tmp_path: Path) -> None:
    for args in ((), ("--json",)):
        result = memgpt("doctor", "--backend", "vllm", "--model-endpoint", dead_endpoint, *args, home=tmp_path)
        assert result.returncode == 1
        assert_one_line_error(result)
    report = report_of(result)
    assert not report["reachable"] and report["constraints"] == []
    [problem] = report["problems"]
    assert problem["check"] == "reachable" and dead_endpoint in problem["problem"]
    assert "--model-endpoint" in problem["fix"]


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    cases = [
        ("doctor", "--backend", "nosuch"),
        ("doctor", "--backend", "vllm", "--model-endpoint", "not a url"),
        ("doctor", "--backend", "llamacpp-embedded", "--model-endpoint", "http://127.0.0.1:1"),
        ("configure", "--check", "--backend", "nosuch"),
    ]
    for args in cases:
        result = memgpt(*args, home=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert_one_line_error(result)
    (tmp_path / "config.toml").write_bytes(b"[model\nbackend = \xff")
    broken = memgpt("doctor", home=tmp_path)
    assert broken.returncode == 1
    assert_one_line_error(broken)


@pytest.mark.model
def test_in_process_model(tmp_path: Path, smollm2: Path) -> None:
    result = memgpt(
        "doctor", "--backend", "llamacpp-embedded", "--model", str(smollm2), "--threads", "1", "--json", home=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result)
    assert report["in_process"] and report["endpoint"] is None and report["ok"]
    assert report["threads"] == 1 and "1 thread" in report["reachable_detail"]
    assert report["context_source"] == "backend" and report["context_window"] >= 2048
    assert report["constraint_honoured"] == "gbnf" and probes(report)["json_schema"]["verdict"] == "honoured"

    missing = memgpt("doctor", "--backend", "llamacpp-embedded", "--model", str(tmp_path / "nope.gguf"), home=tmp_path)
    assert missing.returncode == 1
    assert_one_line_error(missing)
    assert "✗ model file  no:" in missing.stdout and "nope.gguf" in missing.stdout
    assert "fix: give a GGUF file that exists and loads" in missing.stdout

    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 64)
    bad = memgpt("doctor", "--backend", "llamacpp-embedded", "--model", str(corrupt), home=tmp_path)
    assert bad.returncode == 1
    assert_one_line_error(bad)


@pytest.mark.model
def test_what_a_person_sees(dialect_server: Callable[..., Any], tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    server = dialect_server("webui")
    server.inject("ignore_constraint", times=10)
    env = {**os.environ, "MEMGPT_HOME": str(tmp_path), "TERM": "xterm", "COLUMNS": "100", "LINES": "24"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "memgpt", "doctor", "--backend", "webui", "--model-endpoint", server.url],
        env=env,
        encoding="utf-8",
        timeout=300,
        dimensions=(24, 100),
    )
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("Checking webui")
    child.expect("reachable +yes")
    child.expect("model +SmolLM2")
    child.expect("context +unknown")
    child.expect("tokenizer +exact")
    child.expect(r"constraint +gbnf \(used\): ignored")
    child.expect("1 problem:")
    child.expect("fix: update the server")
    child.expect("1 warning:")
    child.expect("fix: memgpt configure --backend webui --context-window N")
    child.expect("Error: 1 problem found with backend 'webui'; see the fixes above")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    lines = transcript.getvalue().splitlines()
    assert "Traceback" not in transcript.getvalue()
    assert len(lines) <= 24, transcript.getvalue()  # one screen
