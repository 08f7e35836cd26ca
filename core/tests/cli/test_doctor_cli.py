"""``memgpt doctor`` on backends written for the test (no model): the probe's verdicts, a backend that breaks
every rule, ``configure --check`` being the same command, the "verified against" field in ``memgpt plugins``,
and a backend plugin pip-installed after the fact appearing in ``configure`` (with its default endpoint),
``plugins`` and ``doctor``. The real servers are in ``tests/test_doctor.py``."""

from __future__ import annotations

import io
import json
import os
import re
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memgpt.contract.backend import NOT_STATED, Backend, BackendSettings, BackendSpec, Capabilities
from memgpt.contract.conformance import schema_violation
from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, Usage
from memgpt.doctor import PROBE_KEY, diagnose, judge, probe_constraint, random_word
from memgpt_backend_llamacpp.grammar_check import check_gbnf

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"
SHIPPED = ("koboldcpp", "llamacpp", "llamacpp-embedded", "lmstudio", "vllm", "webui")


def memgpt(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGPT_HOME": str(home), "COLUMNS": "160"}
    env.pop("MEMGPT_TRACEBACK", None)
    return subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, env=env, timeout=120)


# -- the probe ------------------------------------------------------------------------------------------------


def test_probe_constraints_admit_the_answer_and_nothing_else() -> None:
    word = random_word()
    assert re.fullmatch(r"[a-z][a-z0-9]{6}", word) and word != random_word()
    gbnf = probe_constraint("gbnf", word).gbnf
    assert gbnf is not None and word in gbnf
    check_gbnf(gbnf)  # llama.cpp's parser would take it
    schema = probe_constraint("json_schema", word).json_schema
    assert schema is not None
    assert schema_violation({PROBE_KEY: word}, schema) is None
    assert schema_violation({PROBE_KEY: "hello"}, schema) is not None
    assert schema_violation({PROBE_KEY: word, "x": 1}, schema) is not None


def test_judge() -> None:
    assert judge('{"probe": "qabc123"}', "qabc123", "stop")[0] == "honoured"
    assert judge('{ "probe" :\n "qabc123" }', "qabc123", "stop")[0] == "honoured"
    assert judge('{"probe": "qabc123', "qabc123", "length")[0] == "honoured"  # cut, but the word came back
    assert judge("Once upon a time there was a cat", "qabc123", "stop")[0] == "ignored"
    assert judge("{}", "qabc123", "stop")[0] == "ignored"
    assert judge('{\n\n\n   "pro', "qabc123", "length")[0] == "inconclusive"
    assert judge("", "qabc123", "length")[0] == "inconclusive"


# -- backends that do what they say, and ones that do not -------------------------------------------------


class Honest(Backend):
    """Writes exactly what the constraint admits (read off the constraint), and counts one token a word."""

    name = "honest"
    capabilities = Capabilities(constraints=("json_schema", "gbnf"), tokenizer=True, context_probe=True)
    usage_offset = 0

    def complete(self, request: CompletionRequest) -> Completion:
        text = "Once upon a time"
        constraint = request.constraint
        if constraint is not None and constraint.json_schema is not None and "json_schema" in self.capabilities.constraints:
            text = json.dumps({PROBE_KEY: constraint.json_schema["properties"][PROBE_KEY]["enum"][0]})
        elif constraint is not None and constraint.gbnf is not None and "gbnf" in self.capabilities.constraints:
            word = re.findall(r'\\"([a-z0-9]{7})\\"', constraint.gbnf)[0]
            text = json.dumps({PROBE_KEY: word})
        usage = Usage(prompt_tokens=self.count_tokens(request.prompt) + self.usage_offset, completion_tokens=5)
        return Completion(text=text, usage=usage)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def check(self) -> BackendStatus:
        return BackendStatus(ok=True, endpoint="http://honest.test", model="honest-1", context_window=2048)


def test_an_honest_backend_passes() -> None:
    report = diagnose(Honest(), name="honest", endpoint="http://honest.test", settings=BackendSettings(context_window=1024))
    assert report.ok and report.problems == [], report.problems
    assert report.model == "honest-1" and report.context_window == 2048 and report.configured_context_window == 1024
    assert report.tokenizer == "exact" and report.tokens_cross_checked
    assert [(p.kind, p.verdict) for p in report.constraints] == [("json_schema", "honoured"), ("gbnf", "honoured")]
    assert report.constraint_used == "json_schema" and report.to_dict()["constraint_honoured"] == "json_schema"
    assert "No problems found." in report.lines()


def test_an_exact_tokenizer_that_disagrees_with_the_server_is_a_problem() -> None:
    backend = Honest()
    backend.usage_offset = 5
    report = diagnose(backend, name="honest")
    [problem] = report.problems
    assert problem.check == "tokenizer" and "server reports" in problem.problem and not report.ok


def test_declared_but_unused_kind_that_is_ignored_is_a_warning() -> None:
    class HalfHonest(Honest):
        capabilities = Capabilities(constraints=("json_schema", "gbnf"), tokenizer=True)

        def complete(self, request: CompletionRequest) -> Completion:
            if request.constraint is not None and request.constraint.gbnf is not None:
                return Completion(text="Once upon a time")
            return super().complete(request)

    report = diagnose(HalfHonest(), name="half")
    assert report.ok  # the agent uses json_schema, which works
    [warning] = report.problems
    assert warning.severity == "warning" and "gbnf" in warning.problem and "never sent" in warning.problem


def test_a_backend_that_declares_nothing_but_constrains_is_told_so() -> None:
    class Modest(Honest):
        capabilities = Capabilities(constraints=(), tokenizer=False)

        def complete(self, request: CompletionRequest) -> Completion:
            self.capabilities = Capabilities(constraints=("json_schema", "gbnf"))  # honours both when asked
            try:
                return super().complete(request)
            finally:
                self.capabilities = Capabilities(constraints=(), tokenizer=False)

    report = diagnose(Modest(), name="modest")
    assert report.tokenizer == "estimated" and report.constraint_used is None
    assert all(p.verdict == "honoured" and not p.declared for p in report.constraints)
    problems = [p for p in report.problems if p.severity == "problem"]
    assert len(problems) == 1 and "declares no constraint kind" in problems[0].problem
    assert sum("does not declare" in p.problem for p in report.problems) == 2


def test_a_backend_that_breaks_every_rule_gives_one_line_findings() -> None:
    class Broken(Backend):
        name = "broken"
        capabilities = Capabilities(constraints=("gbnf",), tokenizer=True)

        def complete(self, request: CompletionRequest) -> Completion:
            raise ValueError("complete blew up\nwith a second line")

        def count_tokens(self, text: str) -> int:
            raise KeyError("no tokenizer")

        def check(self) -> BackendStatus:
            return BackendStatus(ok=True, model="m", context_window=None)

    report = diagnose(Broken(), name="broken", endpoint="http://x.test")
    assert not report.ok and report.tokenizer == "failed"
    assert {p.check for p in report.problems} == {"tokenizer", "constraint", "context"}
    gbnf = report.constraints[0]
    assert gbnf.verdict == "failed" and gbnf.detail == "ValueError: complete blew up with a second line"
    assert all("\n" not in p.problem and "\n" not in p.fix for p in report.problems)

    class Raises(Broken):
        def check(self) -> BackendStatus:
            raise RuntimeError("check must not raise")

    report = diagnose(Raises(), name="raises")
    assert not report.reachable and report.constraints == []
    assert report.reachable_detail == "check() raised RuntimeError: check must not raise"


def test_a_factory_that_raises_is_a_finding() -> None:
    from memgpt.doctor import doctor

    def factory(settings: BackendSettings) -> Backend:
        raise OSError("cannot open the device")

    report = doctor(BackendSpec(name="bad", factory=factory), BackendSettings(endpoint="http://x.test"))
    assert not report.ok and "could not be opened: cannot open the device" in report.problems[0].problem
    assert report.verified == NOT_STATED


def test_backend_warnings_stay_off_the_screen(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    class Loud(Honest):
        def complete(self, request: CompletionRequest) -> Completion:
            logging.getLogger("third.party").warning("something the backend logs")
            return super().complete(request)

    report = diagnose(Loud(), name="loud")
    captured = capsys.readouterr()
    assert "something the backend logs" not in captured.err + captured.out
    assert any("something the backend logs" in line for line in report.log)


# -- the command line ------------------------------------------------------------------------------------------


def test_configure_check_is_doctor_and_saves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    via_doctor = memgpt("doctor", "--backend", "scripted", "--json", home=home)
    via_configure = memgpt("configure", "--check", "--backend", "scripted", "--json", home=home)
    assert not (home / "config.toml").exists()
    for result in (via_doctor, via_configure):
        assert result.returncode == 1  # the scripted backend declares constraints and ignores them
        assert "Traceback" not in result.stderr and len([x for x in result.stderr.splitlines() if x.startswith("Error:")]) == 1
    a, b = json.loads(via_doctor.stdout), json.loads(via_configure.stdout)
    assert a.keys() == b.keys()
    assert [(p["kind"], p["verdict"]) for p in a["constraints"]] == [(p["kind"], p["verdict"]) for p in b["constraints"]]
    assert a["constraints"][0]["verdict"] == "ignored" and a["in_process"] and a["context_window"] == 8192
    assert a["verified"] == NOT_STATED

    # with a saved config and no flags, the configured backend is checked
    assert memgpt("configure", "--yes", "--backend", "scripted", home=home).returncode == 0
    saved = memgpt("doctor", "--json", home=home)
    assert json.loads(saved.stdout)["backend"] == "scripted"
    factory_raises = memgpt("doctor", "--backend", "broken", home=home)
    assert factory_raises.returncode == 1 and "could not be opened" in factory_raises.stdout
    assert "Traceback" not in factory_raises.stderr


def test_plugins_show_what_each_backend_was_verified_against(tmp_path: Path) -> None:
    listed = memgpt("plugins", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    verified = {b["name"]: b["verified"] for b in json.loads(listed.stdout)["backends"]}
    for name in SHIPPED:
        assert verified[name] != NOT_STATED, name
    assert verified["lmstudio"].startswith("documentation only")
    for name in ("koboldcpp", "webui"):  # recorded against the real server, or still only the dialect test server
        assert "real server" in verified[name] or "dialect test server" in verified[name], verified[name]
    assert verified["llamacpp"].startswith("real server") and verified["vllm"].startswith("real server")
    assert verified["llamacpp-embedded"].startswith("real")
    assert verified["scripted"] == NOT_STATED  # a plugin that does not say
    table = memgpt("plugins", home=tmp_path)
    assert "verified against" in table.stdout and "documentation only" in table.stdout
    assert re.search(r"scripted .*in process .*unknown \(not stated\)", table.stdout)


# -- a backend plugin installed after memgpt --------------------------------------------------------------------

ECHO_PLUGIN = '''
"""A third-party backend: answers every constrained request with what its JSON schema admits."""
import json
from memgpt import hookimpl
from memgpt.contract import Backend, BackendSpec, BackendStatus, Capabilities, Completion

class Echo(Backend):
    name = "echo"
    capabilities = Capabilities(constraints=("json_schema",))

    def __init__(self, settings):
        self.settings = settings

    def complete(self, request):
        schema = request.constraint.json_schema if request.constraint else None
        if schema:
            key = next(iter(schema["properties"]))
            return Completion(text=json.dumps({key: schema["properties"][key]["enum"][0]}))
        return Completion(text="echo")

    def count_tokens(self, text):
        return max(1, len(text) // 4)

    def check(self):
        return BackendStatus(ok=True, endpoint=self.settings.endpoint, model="echo-model", context_window=3000)

@hookimpl
def register_backends(register):
    register(BackendSpec(name="echo", factory=Echo, description="the echo test server", default_endpoint="http://localhost:7777"))
'''


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = next((root / "lib").glob("python3*/site-packages"))
    workspace_site = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    (purelib / "_workspace.pth").write_text(f"import site; site.addsitedir({workspace_site!r})\n")
    return root


def in_venv(venv: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGPT_HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "COLUMNS": "160"}
    return subprocess.run([str(venv / "bin" / "python"), *args], capture_output=True, text=True, env=env, timeout=300)


def configure_screen(venv: Path, home: Path) -> str:
    """What interactive `memgpt configure` shows before its first question."""
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(
        str(venv / "bin" / "python"), ["-m", "memgpt", "configure"], env=env, encoding="utf-8", timeout=60, dimensions=(60, 160)
    )
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("Select LLM backend")
    child.close(force=True)  # the list is what this test reads; the question is not answered
    return transcript.getvalue()


def test_a_backend_installed_later_is_offered_checked_and_listed(venv: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = configure_screen(venv, home)
    for name in SHIPPED:
        assert re.search(rf"^\s*{re.escape(name)}\s", before, re.MULTILINE), name
    assert re.search(r"koboldcpp\s+http://localhost:5001", before)
    assert re.search(r"llamacpp-embedded\s+in process", before)
    assert "echo" not in before

    package = tmp_path / "memgpt-backend-echo"
    (package / "src" / "memgpt_backend_echo").mkdir(parents=True)
    (package / "src" / "memgpt_backend_echo" / "__init__.py").write_text(textwrap.dedent(ECHO_PLUGIN))
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "memgpt-backend-echo"
            version = "0.1.0"
            requires-python = ">=3.11"

            [project.entry-points.memgpt]
            echo = "memgpt_backend_echo"

            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
    )
    installed = in_venv(venv, "-m", "pip", "install", "--no-deps", "--no-build-isolation", str(package), home=home)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    after = configure_screen(venv, home)
    assert re.search(r"^\s*echo\s+http://localhost:7777\s+the echo test server", after, re.MULTILINE), after

    listed = in_venv(venv, "-m", "memgpt", "plugins", "--json", home=home)
    echo = next(b for b in json.loads(listed.stdout)["backends"] if b["name"] == "echo")
    assert echo["verified"] == NOT_STATED and echo["default_endpoint"] == "http://localhost:7777"

    checked = in_venv(venv, "-m", "memgpt", "doctor", "--backend", "echo", "--json", home=home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["endpoint"] == "http://localhost:7777" and report["model"] == "echo-model"
    assert report["constraint_honoured"] == "json_schema" and report["tokenizer"] == "estimated"
    assert [(p["kind"], p["verdict"]) for p in report["constraints"]] == [("json_schema", "honoured"), ("gbnf", "ignored")]
