"""What `memgpt --help` and `memgpt list agents` import: neither pydantic, numpy, sqlite-utils nor any plugin
(bench/bench_cli_startup.py measures what that saves), and what they print is what the full path prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperCommand
from typer.testing import CliRunner

from memgpt import hookimpl, plugins
from memgpt.cli import agent_list, command_cache
from memgpt.cli.app import get_app
from memgpt.cli.plain_params import PlainTextCommand
from memgpt.cli.spec import CommandSpec
from memgpt.contract.types import Message
from memgpt.storage import _schema
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage

#: Runs the console entry point in-process, then reports on stderr which of the costly modules it imported.
RUNNER = """
import json, sys
sys.argv = ["memgpt", *sys.argv[1:]]
from memgpt.cli.app import run
try:
    run()
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
costly = ("pydantic", "numpy", "sqlite_utils", "stevedore", "rich")
loaded = sorted(
    m for m in sys.modules
    if m.split(".")[0] in costly or m.startswith("memgpt_") or m in ("importlib.metadata", "memgpt.plugins", "memgpt.builtin")
)
sys.stderr.write("\\nLOADED " + json.dumps(loaded) + "\\n")
sys.exit(code)
"""


def memgpt(cwd: Path, *args: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the costly modules of one `memgpt ARGS` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=os.environ.copy()
    )
    _, _, loaded = done.stderr.rpartition("\nLOADED ")
    assert loaded, done.stderr
    return done.returncode, done.stdout, json.loads(loaded)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (``python -c`` puts it on sys.path) and a cache of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def test_help_lists_plugin_commands_without_importing_a_plugin(cwd: Path) -> None:
    code, first, loaded = memgpt(cwd, "--help")
    assert code == 0 and "server" in first and "migrate" in first
    assert "memgpt_server" in loaded and "pydantic" in loaded  # no cache yet: the plugins were loaded
    assert command_cache.path().is_file()
    code, second, loaded = memgpt(cwd, "--help")
    assert code == 0 and second == first
    assert loaded == [], loaded


def test_list_agents_imports_neither_pydantic_nor_the_storage_engine(cwd: Path, _isolated_home: Path) -> None:
    make_agents(_isolated_home)
    code, out, loaded = memgpt(cwd, "list", "agents", "--json")
    assert code == 0 and [row["name"] for row in json.loads(out)] == ["newer", "older"]
    assert loaded == [], loaded


def test_a_plugin_command_runs_the_plugin_itself(cwd: Path) -> None:
    memgpt(cwd, "--help")  # the cache lists `server`
    code, out, loaded = memgpt(cwd, "server", "--help")
    assert code == 0 and "--port" in out and "memgpt_server" in loaded


def make_agents(home: Path) -> None:
    storage = SQLiteStorage(home / "memgpt.db")
    now = datetime.now(UTC)
    try:
        for name, age, messages, passages in (("older", 2, 1, 2), ("newer", 1, 3, 0)):
            storage.save_agent(
                AgentRecord(
                    name=name,
                    settings={"persona": "sam_pov", "human": "basic", "preset": "memgpt_chat", "model": {"backend": "llamacpp"}},
                    created_at=now - timedelta(days=age + 1),
                    updated_at=now - timedelta(days=age),
                )
            )
            storage.add_messages(name, [Message(role="user", content=f"hi {i}") for i in range(messages)])
            if passages:
                storage.add_passages(name, [f"p{i}" for i in range(passages)], [[1.0, float(i)] for i in range(passages)])
    finally:
        storage.close()


def listed(*args: str) -> Any:
    result = CliRunner().invoke(get_app(), ["list", "agents", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_direct_read_lists_what_the_storage_engine_lists(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agents(_isolated_home)
    direct = listed()
    assert [(r["name"], r["messages"], r["passages"]) for r in direct] == [("newer", 3, 0), ("older", 1, 2)]
    (_isolated_home / "config.toml").write_text('[storage]\nengine = "sqlite"\n', encoding="utf-8")
    assert agent_list.rows(_isolated_home) is None and listed() == direct  # validated config, then the direct read
    monkeypatch.setattr(agent_list, "read", lambda home: None)
    assert listed() == direct  # the storage engine


def test_the_direct_read_leaves_what_it_cannot_vouch_for_to_the_storage_engine(_isolated_home: Path) -> None:
    assert agent_list.rows(_isolated_home) is None  # no database yet: opening it creates it
    assert listed() == [] and (_isolated_home / "memgpt.db").is_file()
    assert agent_list.rows(_isolated_home) == []
    (_isolated_home / "memgpt.db").unlink()
    (_isolated_home / "memgpt.db").write_bytes(b"not a database, but long enough to be read as one" * 100)
    assert agent_list.rows(_isolated_home) is None  # damaged: the storage engine says so its own way
    (_isolated_home / "config.toml").write_text("version = 1\n", encoding="utf-8")
    assert agent_list.rows(_isolated_home) is None


def test_the_direct_read_knows_the_current_schema_version() -> None:
    assert agent_list.SCHEMA_VERSION == len(_schema.MIGRATIONS)


def fake_plugin(folder: Path, help_text: str) -> types.ModuleType:
    source = folder / "fake_commands_plugin.py"
    source.write_text(
        "from memgpt import hookimpl\n"
        "from memgpt.cli.spec import CommandSpec\n"
        "def hello() -> None:\n    '''Say hello.'''\n"
        "@hookimpl\ndef register_commands(register):\n"
        f"    register(CommandSpec(name='hello', callback=hello, help={help_text!r}))\n",
        encoding="utf-8",
    )
    module = types.ModuleType("fake_commands_plugin")
    module.__file__ = str(source)
    exec(compile(source.read_text(encoding="utf-8"), str(source), "exec"), module.__dict__)
    return module


def test_the_command_cache_is_dropped_when_what_it_came_from_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    module = fake_plugin(tmp_path, "")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    registry = plugins.build_registry([("fake", module)])
    command_cache.save(registry, command_cache.listed(registry))
    assert command_cache.load() == [{"name": "hello", "help": "Say hello.", "plugin": "fake"}]  # the docstring
    with monkeypatch.context() as patch:
        patch.setenv("MEMGPT_DISABLE_PLUGINS", "server")
        assert command_cache.load() is None  # another plugin selection
    with monkeypatch.context() as patch:
        patch.setattr(sys, "path", [*sys.path, str(tmp_path)])
        assert command_cache.load() is None  # another sys.path
    assert command_cache.load() is not None
    source = Path(str(module.__file__))
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert command_cache.load() is None  # the plugin's source was edited


@pytest.mark.parametrize(
    "commands",
    [[{"help": "no name"}], ["hello"], [{"name": "hello", "help": 3}], {"name": "hello"}],
    ids=["no-name", "not-an-object", "help-not-text", "not-a-list"],
)
def test_a_damaged_command_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    module = fake_plugin(tmp_path, "")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    registry = plugins.build_registry([("fake", module)])
    command_cache.save(registry, command_cache.listed(registry))
    data = json.loads(command_cache.path().read_text(encoding="utf-8"))
    assert command_cache.load() == data["commands"]  # valid as written
    data["commands"] = commands
    command_cache.path().write_text(json.dumps(data), encoding="utf-8")
    assert command_cache.load() is None


def test_the_command_cache_is_not_written_from_a_load_with_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    module = types.ModuleType("clashing")

    @hookimpl
    def register_commands(register: Any) -> None:
        register(CommandSpec(name="hello", callback=lambda: None))
        register(CommandSpec(name="hello", callback=lambda: None))

    module.register_commands = register_commands  # type: ignore[attr-defined]
    registry = plugins.build_registry([("clashing", module)])
    assert registry.failures
    command_cache.save(registry, command_cache.listed(registry))
    assert not command_cache.path().exists()


def test_plain_text_parameters_get_the_values_typer_gives() -> None:
    def command(
        name: str,
        count: int = typer.Option(1),
        upper: str = typer.Option("x", parser=str.upper),
        flag: bool = typer.Option(False),
        label: str | None = typer.Option(None),
    ) -> None:
        typer.echo(json.dumps([name, count, upper, flag, label]))

    outputs = []
    for cls in (TyperCommand, PlainTextCommand):
        app = typer.Typer()
        app.command(cls=cls)(command)
        app.command("other")(lambda: None)  # a group, so that the command is named
        runs = [
            CliRunner().invoke(app, ["command", *args])
            for args in (["Zoë"], ["a", "--count", "3", "--upper", "b", "--flag", "--label", "l"], ["a", "--count", "x"], [])
        ]
        outputs.append([(run.exit_code, run.output) for run in runs])
    assert outputs[0] == outputs[1]
    assert outputs[1][1] == (0, json.dumps(["a", 3, "B", True, "l"]) + "\n")
    assert outputs[1][2][0] == 2


def test_a_typer_whose_internals_changed_keeps_its_own_coercion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deferred coercion leans on typer's private ``_coercion`` module: when building it fails (a typer
    whose internals changed shape), the command keeps typer's own coercion and still runs."""
    from memgpt.cli import plain_params

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unexpected keyword argument 'parameter_info'")

    monkeypatch.setattr(plain_params, "_Deferred", broken)

    def command(name: str, count: int = 1) -> None:
        typer.echo(json.dumps([name, count]))

    app = typer.Typer()
    app.command(cls=PlainTextCommand)(command)
    app.command("other")(lambda: None)
    run = CliRunner().invoke(app, ["command", "Zoë", "--count", "2"])
    assert (run.exit_code, run.output) == (0, json.dumps(["Zoë", 2]) + "\n")
