"""The command hook: the installed plugin adds ``memgpt server``; a plugin cannot take a built-in name."""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any


def test_memgpt_lists_the_server_command(home: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "memgpt", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "server" in done.stdout
    done = subprocess.run([sys.executable, "-m", "memgpt", "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert '"commands": [\n          "server"' in done.stdout.replace("\r", "")


def test_a_plugin_command_with_a_built_in_name_is_refused() -> None:
    from memgpt import hookimpl, plugins
    from memgpt.cli import app as cli
    from memgpt.cli.spec import CommandSpec

    module = types.ModuleType("clashing")

    @hookimpl
    def register_commands(register: Any) -> None:
        register(CommandSpec(name="run", callback=lambda: None))
        register(CommandSpec(name="hello-test", callback=lambda: None, help="says hello"))

    module.register_commands = register_commands  # type: ignore[attr-defined]
    registry = plugins.build_registry([("clashing", module)])
    cli.get_app()
    before = list(cli.app.registered_commands)
    cached = plugins.get_registry
    plugins.get_registry = lambda: registry  # type: ignore[assignment]
    try:
        cli._plugin_commands()
        names = [c.name for c in cli.app.registered_commands]
        assert names.count("run") == 1 and "hello-test" in names
        assert any(f.stage == "register_commands" and "'run' belongs to a built-in command" in f.error for f in registry.failures)
    finally:
        plugins.get_registry = cached  # type: ignore[assignment]
        cli.app.registered_commands[:] = before
