"""The ``memgpt`` typer app. Sub-commands import their modules lazily so ``memgpt --help`` stays fast."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from memgpt import __version__

app = typer.Typer(
    name="memgpt",
    help="MemGPT agents on open, local LLMs: agents that manage their own memory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit non-zero."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memgpt {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """MemGPT agents on open, local LLMs."""


_registered = False


def _register() -> None:
    """Attach the sub-commands (once). Their modules import what they need only when run."""
    global _registered
    if _registered:
        return
    _registered = True
    from memgpt.cli import configure_cmd, plugins_cmd

    app.command("plugins")(plugins_cmd.plugins)
    app.command("configure")(configure_cmd.configure)
    try:
        from memgpt.cli import agent_cmds
    except ImportError:
        agent_cmds = None  # type: ignore[assignment]
    if agent_cmds is not None:
        agent_cmds.register(app)
    else:
        app.command("run")(_not_implemented("run"))


def _not_implemented(name: str):  # type: ignore[no-untyped-def]
    def command() -> None:
        fail(f"`memgpt {name}` is not available in this build", code=2)

    command.__doc__ = f"(not available in this build) {name}"
    return command


def get_app() -> typer.Typer:
    """The app with every command attached (what tests drive with typer's CliRunner)."""
    _register()
    return app


def run() -> None:
    """Console-script entry point: turns every MemGPTError into one line on stderr."""
    from memgpt.errors import MemGPTError

    _register()
    try:
        app()
    except MemGPTError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
