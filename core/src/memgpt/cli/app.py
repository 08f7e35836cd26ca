"""The ``memgpt`` typer app. Sub-commands import their modules lazily so ``memgpt --help`` stays fast."""

from __future__ import annotations

import os
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
    # click's plain help: rich's renderer alone costs more CPU than the rest of `memgpt --help`
    rich_markup_mode=None,
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit non-zero."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def stdin_is_terminal() -> bool:
    """Whether a person can answer questions on stdin (False when stdin is closed: ``<&-``)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _reopen_closed_std_streams() -> None:
    """Put /dev/null on a closed stdin / stdout / stderr (``<&-``). Python leaves ``sys.stdin`` None then,
    and the next file memgpt opened (the database) would get descriptor 0 and be read as input."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False))


def _crash_report(exc: BaseException) -> str:
    """Write the traceback of an unexpected error to a temp file; return its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="memgpt-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(f"memgpt {__version__}: {' '.join(sys.argv)}\n\n")
        handle.write("".join(traceback.format_exception(exc)))
    return path


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


def _register(argv: list[str] | None = None) -> None:
    """Attach the sub-commands (once). Their modules import what they need only when run. Plugin commands
    need every plugin loaded, so they are attached only when ``argv`` (the command line, when known) does not
    name a built-in command: ``memgpt run`` or ``memgpt list`` never pay for loading plugins they do not use."""
    global _registered
    if _registered:
        return
    _registered = True
    from memgpt.cli import configure_cmd, eval_cmd, plugins_cmd

    app.command("plugins")(plugins_cmd.plugins)
    app.command("configure")(configure_cmd.configure)
    app.command("doctor")(configure_cmd.doctor_command)
    app.command("eval")(eval_cmd.eval_command)
    try:
        from memgpt.cli import agent_cmds
    except ImportError:
        agent_cmds = None  # type: ignore[assignment]
    if agent_cmds is not None:
        agent_cmds.register(app)
    else:
        app.command("run")(_not_implemented("run"))
    builtin = {info.name for info in app.registered_commands} | {group.name for group in app.registered_groups if group.name}
    command = next((arg for arg in argv or [] if not arg.startswith("-")), None)
    if argv is None or command not in builtin or command == "plugins":  # `plugins` reports refused commands
        _plugin_commands()


def _plugin_commands() -> None:
    """Attach the sub-commands plugins register (``register_commands``); a built-in name is never replaced."""
    from memgpt.plugins import PluginFailure, get_registry

    registry = get_registry()
    taken = {info.name for info in app.registered_commands}
    for name, spec in registry.commands.items():
        if name in taken:
            why = f"command name {name!r} belongs to a built-in command; not added"
            registry.failures.append(PluginFailure(spec.plugin, None, "register_commands", why))
            continue
        app.command(name, help=spec.help or None)(spec.callback)


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

    _reopen_closed_std_streams()
    _register(sys.argv[1:])
    if os.environ.get("_MEMGPT_COMPLETE"):  # the shell asks for completions (`memgpt completion bash`)
        from memgpt.cli.completion_cmd import prepare

        prepare()
    try:
        app()
    except MemGPTError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `memgpt list agents | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        typer.echo(
            f"Error: cannot use{where}: {exc.strerror or exc}; check that it exists and is writable (or set MEMGPT_HOME)",
            err=True,
        )
        sys.exit(1)
    except UnicodeEncodeError as exc:
        # Bytes that are not UTF-8 reach Python as lone surrogates (argv, file names); they cannot be stored.
        try:
            shown = exc.object.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            shown = exc.object.encode("utf-8", "backslashreplace").decode("utf-8")
        typer.echo(f"Error: '{shown}' is not UTF-8 text; give names and text in UTF-8", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("MEMGPT_TRACEBACK"):
            raise
        # A bug, not a user error: one line, and the traceback where it can be reported from.
        typer.echo(
            f"Error: internal error ({type(exc).__name__}: {exc}); traceback written to {_crash_report(exc)} — please report it",
            err=True,
        )
        sys.exit(1)
