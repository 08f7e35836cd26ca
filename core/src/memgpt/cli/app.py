"""The ``memgpt`` typer app. Sub-commands import their modules lazily so ``memgpt --help`` stays fast."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from memgpt import __version__
from memgpt.cli.plain_params import PlainTextCommand, PlainTextGroup

app = typer.Typer(
    name="memgpt",
    cls=PlainTextGroup,
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


#: The built-in commands, in the order ``memgpt --help`` lists them: name -> (module in memgpt.cli, function).
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("plugins_cmd", "plugins"),
    "configure": ("configure_cmd", "configure"),
    "doctor": ("configure_cmd", "doctor_command"),
    "eval": ("eval_cmd", "eval_command"),
    "run": ("agent_cmds", "run"),
    "list": ("agent_cmds", "list_cmd"),
    "show": ("agent_cmds", "show"),
    "add": ("agent_cmds", "add"),
    "delete": ("agent_cmds", "delete"),
    "load": ("load_cmd", "load"),
    "search": ("search_cmd", "search"),
    "export": ("export_cmd", "export_command"),
    "import": ("export_cmd", "import_command"),
    "completion": ("completion_cmd", "completion"),
}

#: How the plugins' commands are attached: "" not yet, "listed" from the cache (names and help only, for
#: ``memgpt --help``), "loaded" from the plugins themselves.
_plugins_attached = ""


def _attach_builtins(names: list[str]) -> None:
    """Attach these built-in commands (those not attached yet), keeping ``BUILTIN_COMMANDS``' order first."""
    import importlib

    attached = {info.name for info in app.registered_commands}
    for name in names:
        if name not in attached:
            module, function = BUILTIN_COMMANDS[name]
            app.command(name, cls=PlainTextCommand)(getattr(importlib.import_module(f"memgpt.cli.{module}"), function))
    order = list(BUILTIN_COMMANDS)
    app.registered_commands.sort(key=lambda info: order.index(info.name) if info.name in order else len(order))


def _register(argv: list[str] | None = None) -> None:
    """Attach the sub-commands. Their modules import what they need only when run.

    With ``argv`` (the command line, when known) naming a built-in command, only that command is attached:
    typer builds no other, and no plugin is loaded (``memgpt list agents`` pays for neither). Without a command
    (``memgpt --help``, ``memgpt``) every built-in is attached, and the plugins' commands are listed from
    ``command_cache`` when it is up to date, so that listing them imports no plugin. Anything else (a plugin's
    command, ``memgpt plugins``, which reports refused commands, shell completion, ``MEMGPT_TRACE_PLUGINS``,
    ``argv=None``) loads the plugins and attaches their commands."""
    global _plugins_attached
    command = next((arg for arg in argv or [] if not arg.startswith("-")), None)
    if argv is not None and command in BUILTIN_COMMANDS and command != "plugins":
        _attach_builtins([command])
        return
    _attach_builtins(list(BUILTIN_COMMANDS))
    if _plugins_attached == "loaded":
        return
    listing = argv is not None and command is None
    if listing and not os.environ.get("_MEMGPT_COMPLETE") and not os.environ.get("MEMGPT_TRACE_PLUGINS"):
        if _plugins_attached == "listed" or _list_cached_plugin_commands():
            return
    _plugin_commands(remember=argv is not None)


def _list_cached_plugin_commands() -> bool:
    """Attach the plugins' commands as ``command_cache`` remembers them (names and help, for the listing only);
    False when it has nothing up to date."""
    global _plugins_attached
    from memgpt.cli import command_cache

    commands = command_cache.load()
    if commands is None:
        return False
    for command in commands:
        app.command(command["name"], help=command["help"])(_listed_only(command["name"]))
    _plugins_attached = "listed"
    return True


def _listed_only(name: str):  # type: ignore[no-untyped-def]
    """What a listed plugin command runs: never run (``_register`` loads the plugins before running one)."""

    def command() -> None:
        raise RuntimeError(f"plugin command {name!r} was listed from the cache but not loaded")

    return command


def _plugin_commands(remember: bool = False) -> None:
    """Attach the sub-commands plugins register (``register_commands``); a built-in name is never replaced.
    With ``remember``, what was attached is written to ``command_cache`` for the next ``memgpt --help``."""
    global _plugins_attached
    from memgpt.plugins import PluginFailure, get_registry

    if _plugins_attached == "listed":
        app.registered_commands[:] = [info for info in app.registered_commands if info.name in BUILTIN_COMMANDS]
    registry = get_registry()
    taken = {info.name for info in app.registered_commands}
    for name, spec in registry.commands.items():
        if name in taken:
            why = f"command name {name!r} belongs to a built-in command; not added"
            registry.failures.append(PluginFailure(spec.plugin, None, "register_commands", why))
            continue
        app.command(name, help=spec.help or None)(spec.callback)
    _plugins_attached = "loaded"
    if remember:
        from memgpt.cli import command_cache

        command_cache.save(registry, command_cache.listed(registry))


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
