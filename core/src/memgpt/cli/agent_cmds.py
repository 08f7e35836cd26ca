"""``memgpt run | list | add | delete | load``: thin commands over ``memgpt.session`` and the agent."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from memgpt.cli.app import fail, stdin_is_terminal
from memgpt.cli.completion_cmd import agent_names

LIST_KINDS = ("agents", "personas", "humans", "presets")


def _overrides(
    backend: str | None,
    endpoint: str | None,
    model: str | None,
    wrapper: str | None,
    context_window: int | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    return {
        "backend": backend,
        "endpoint": endpoint,
        "model": model,
        "wrapper": wrapper,
        "context_window": context_window,
        "max_tokens": max_tokens,
    }


def run(
    agent: Optional[str] = typer.Option(
        None,
        "--agent",
        help="Agent to resume (created if it does not exist); without it a terminal session offers the saved ones.",
        autocompletion=agent_names,
    ),
    persona: Optional[str] = typer.Option(None, "--persona", help="Persona for a new agent."),
    human: Optional[str] = typer.Option(None, "--human", help="Human description for a new agent."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset (system prompt + functions)."),
    model_endpoint_type: Optional[str] = typer.Option(None, "--model-endpoint-type", "--backend", help="LLM backend name."),
    model_endpoint: Optional[str] = typer.Option(None, "--model-endpoint", help="Server URL (server backends)."),
    model_wrapper: Optional[str] = typer.Option(None, "--model-wrapper", help="Prompt wrapper name."),
    context_window: Optional[int] = typer.Option(None, "--context-window", min=256, help="Context size in tokens."),
    max_tokens: Optional[int] = typer.Option(
        None, "--max-tokens", min=16, help="Tokens reserved for each model turn (bounds its strings)."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, or a GGUF path for in-process backends."),
    first: bool = typer.Option(False, "--first", help="You speak first (no greeting from the agent)."),
    heartbeat_every: Optional[float] = typer.Option(
        None,
        "--heartbeat-every",
        min=0.05,
        metavar="MINUTES",
        help="Timed heartbeats: wake the agent after MINUTES without a message (interactive sessions).",
    ),
    message: Optional[list[str]] = typer.Option(
        None, "--message", "-m", help="Send this message non-interactively (repeatable)."
    ),
    non_interactive: bool = typer.Option(
        False, "--non-interactive", help="Read messages from stdin, one per line; print JSON lines."
    ),
    turn_timeout: Optional[float] = typer.Option(
        None,
        "--turn-timeout",
        min=1,
        metavar="SECONDS",
        help="The most seconds one turn may wait on the model server (default: no turn deadline; also [model] turn_timeout).",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Log every prompt, raw output, parse repair and token count to a file (its path is printed)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept defaults without asking (without --agent: a new agent)."),
) -> None:
    """Chat with an agent. Without --message / --non-interactive it is an interactive session."""

    from memgpt.config import load_config
    from memgpt.session import AgentOptions, open_session

    if debug:
        _debug_log()
    scripted = bool(message) or non_interactive or not stdin_is_terminal()
    config = load_config()
    if turn_timeout is not None:
        config.model.turn_timeout = turn_timeout
    from memgpt.cli import agent_choice, chat

    model_endpoint_type, model_wrapper = agent_choice.canonical_names(model_endpoint_type, model_wrapper)
    agents = agent_choice.saved_agents(config)
    if agent is None and not scripted and not yes:
        agent = agent_choice.pick(agents)
    existing = next((a for a in agents if a.name == agent), None)
    agent_choice.check_endpoint_flags(config, existing, model_endpoint_type, model_endpoint)
    notes = agent_choice.ignored_options(existing, persona=persona, human=human)
    if scripted and heartbeat_every is not None:
        notes.append(
            "--heartbeat-every is ignored: timed heartbeats are for interactive sessions (scripted input waits for no one)"
        )
    options = AgentOptions(
        name=agent or agent_choice.new_agent_name({a.name for a in agents}),
        persona=persona,
        human=human,
        preset=preset,
        model=_overrides(model_endpoint_type, model_endpoint, model, model_wrapper, context_window, max_tokens),
        heartbeat_minutes=None if scripted else heartbeat_every,
    )
    view = chat.JsonView() if scripted else chat.RichView()
    session = open_session(config, options, on_event=view.event)
    try:
        view.opened(session)
        for note in [*notes, *agent_choice.capped(session, context_window)]:
            view.info(note)
        if scripted:
            lines = message if message else chat.stdin_lines(view)
            errors = chat.run_scripted(session, view, lines, greet=not first)
            if errors:
                raise typer.Exit(1)
        else:
            assert isinstance(view, chat.RichView)
            chat.run_interactive(session, view, greet=not first)
    finally:
        session.close()


def list_cmd(
    kind: str = typer.Argument(..., help="agents | personas | humans | presets"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List agents, personas, humans or presets."""
    if kind not in LIST_KINDS:
        fail(f"unknown list {kind!r}; choose one of: {', '.join(LIST_KINDS)}", code=2)
    if kind == "agents":
        from memgpt._home import home
        from memgpt.cli import agent_list

        quick = agent_list.rows(home())
        rows = quick if quick is not None else _agent_rows()
    else:
        from memgpt import catalog

        rows = [{"name": n} for n in catalog.names(kind)]  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from memgpt.cli.tables import print_rows

    # the table leaves the ISO timestamps to --json: last_used says it in a line's width
    print_rows(kind, rows, columns=[c for c in (rows[0] if rows else ["name"]) if c not in ("created_at", "updated_at")])


def _agent_rows() -> list[dict[str, Any]]:
    """``memgpt list agents`` with a config file: the default storage straight from its file (``agent_list.read``)
    when the config names it, else through the configured storage engine."""
    from memgpt.cli import agent_list
    from memgpt.config import home, load_config
    from memgpt.session import open_storage

    config = load_config()
    if config.storage.engine == "sqlite" and config.storage.uri is None:
        quick = agent_list.read(home())
        if quick is not None:
            return quick
    storage = open_storage(config)
    try:
        return [
            agent_list.agent_row(
                r.name, r.settings, r.created_at, r.updated_at, storage.count_messages(r.name), storage.count_passages(r.name)
            )
            for r in sorted(storage.list_agents(), key=lambda r: r.updated_at, reverse=True)
        ]
    finally:
        storage.close()


def add(
    kind: str = typer.Argument(..., help="persona | human"),
    name: str = typer.Option(..., "--name", help="Name to save it under."),
    text: Optional[str] = typer.Option(None, "--text", help="The text."),
    file: Optional[Path] = typer.Option(
        None, "--file", exists=True, dir_okay=False, readable=True, help="Read the text from a file."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a persona / human of the same name (yours or a built-in one)."),
) -> None:
    """Add your own persona or human description."""
    from memgpt import catalog

    kinds = {"persona": "personas", "human": "humans"}
    if kind not in kinds:
        fail(f"unknown kind {kind!r}; choose one of: persona, human", code=2)
    if (text is None) == (file is None):
        fail("give exactly one of --text or --file", code=2)
    body = text if text is not None else _read_text_file(file)  # type: ignore[arg-type]
    bad = next((ch for ch in body if "\udc80" <= ch <= "\udcff"), None)  # a byte of --text that was not UTF-8
    if bad is not None:
        fail(f"--text is not UTF-8 (byte {ord(bad) - 0xDC00:#04x}); give it in UTF-8, or use --file", code=2)
    try:
        path = catalog.add(kinds[kind], name, body, replace=force)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc), code=2)
    typer.echo(f"Saved {kind} {name!r} to {path}")


def _read_text_file(path: Path) -> str:
    """A text file as UTF-8; a file that is not UTF-8 is read as Windows-1252 / Latin-1, with a warning."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path} ({exc.strerror})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
    for encoding in ("cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        typer.echo(f"Warning: {path} is not UTF-8 (byte {bad:#04x}); read it as {encoding}", err=True)
        return text
    raise AssertionError("latin-1 decodes every byte")


def delete(
    kind: str = typer.Argument(..., help="agent"),
    name: str = typer.Argument(..., help="Name of the agent."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an agent with all its messages and archival memory."""
    from memgpt.config import load_config
    from memgpt.session import agent_lock, open_storage

    if kind != "agent":
        fail(f"unknown kind {kind!r}; only `memgpt delete agent NAME` is supported", code=2)
    if not yes and stdin_is_terminal() and not typer.confirm(f"Delete agent {name!r} and all its memory?"):
        raise typer.Exit(1)
    storage = open_storage(load_config())
    try:
        with agent_lock(storage, name):  # never under a session that has it open (the engine's lock where it has one)
            if not storage.delete_agent(name):
                fail(f"no agent named {name!r} (see `memgpt list agents`)")
    finally:
        storage.close()
    typer.echo(f"Deleted agent {name!r}")


def show(
    kind: str = typer.Argument(..., help="agent | persona | human | preset"),
    name: str = typer.Argument(..., help="Its name (see `memgpt list`)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show an agent (its model, backend, endpoint, wrapper, context window, persona, human and memory
    sizes), or the text of a persona, human or preset."""
    from memgpt.config import load_config
    from memgpt.session import AGENT_MODEL_KEYS, open_storage

    texts = {"persona": "personas", "human": "humans", "preset": "presets"}
    if kind in texts:
        from memgpt import catalog

        body = catalog.read(texts[kind], name)  # type: ignore[arg-type]
        typer.echo(json.dumps({"name": name, "text": body}, ensure_ascii=False) if as_json else body.rstrip("\n"))
        return
    if kind != "agent":
        fail(f"unknown kind {kind!r}; choose one of: agent, persona, human, preset", code=2)
    config = load_config()
    storage = open_storage(config)
    try:
        record = storage.get_agent(name)
        if record is None:
            fail(f"no agent named {name!r} (see `memgpt list agents`)")
        from memgpt.agent.state import AgentState

        state = AgentState.load(record.settings)
        model = {key: state.model.get(key, getattr(config.model, key)) for key in AGENT_MODEL_KEYS}
        data = {
            "name": record.name,
            "preset": state.preset,
            "persona": state.persona,
            "human": state.human,
            "model": model,
            "core_memory": {block: len(text) for block, text in record.core_memory.items()},
            "messages": storage.count_messages(name),
            "in_context": len(record.in_context),
            "passages": storage.count_passages(name),
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
        }
    finally:
        storage.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={'(default)' if v is None else v}" for k, v in value.items())
        typer.echo(f"{key + ':':<12} {value}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("list")(list_cmd)
    app.command("show")(show)
    app.command("add")(add)
    app.command("delete")(delete)
    from memgpt.cli import export_cmd, load_cmd, search_cmd

    app.command("load")(load_cmd.load)
    app.command("search")(search_cmd.search)
    app.command("export")(export_cmd.export_command)
    app.command("import")(export_cmd.import_command)
    from memgpt.cli import completion_cmd

    app.command("completion")(completion_cmd.completion)


def _debug_log() -> None:
    """``--debug``: everything the agent and its backend log, at DEBUG, to a new file under ``$MEMGPT_HOME/logs``."""
    import logging
    from datetime import datetime

    from memgpt.config import home

    folder = home() / "logs"
    path = folder / f"debug-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        os.chmod(path, 0o600)  # prompts hold the user's conversation
    except OSError as err:
        print(f"memgpt: cannot write a debug log in {folder} ({err.strerror or err}); going on without one", file=sys.stderr)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in ("httpcore", "httpx", "filelock", "urllib3", "sentence_transformers", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    print(f"memgpt: debug log: {path}", file=sys.stderr)
