"""``memgpt run | list | add | delete | load``: thin commands over ``memgpt.runtime`` and the agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from memgpt.cli.app import fail

LIST_KINDS = ("agents", "personas", "humans", "presets")


def _overrides(
    backend: str | None, endpoint: str | None, model: str | None, wrapper: str | None, context_window: int | None, max_tokens: int | None
) -> dict[str, Any]:
    return {"backend": backend, "endpoint": endpoint, "model": model, "wrapper": wrapper, "context_window": context_window, "max_tokens": max_tokens}


def run(
    agent: Optional[str] = typer.Option(None, "--agent", help="Agent to resume (created if it does not exist)."),
    persona: Optional[str] = typer.Option(None, "--persona", help="Persona for a new agent."),
    human: Optional[str] = typer.Option(None, "--human", help="Human description for a new agent."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset (system prompt + functions)."),
    model_endpoint_type: Optional[str] = typer.Option(None, "--model-endpoint-type", "--backend", help="LLM backend name."),
    model_endpoint: Optional[str] = typer.Option(None, "--model-endpoint", help="Server URL (server backends)."),
    model_wrapper: Optional[str] = typer.Option(None, "--model-wrapper", help="Prompt wrapper name."),
    context_window: Optional[int] = typer.Option(None, "--context-window", min=256, help="Context size in tokens."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=16, help="Tokens reserved for each model turn (bounds its strings)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, or a GGUF path for in-process backends."),
    first: bool = typer.Option(False, "--first", help="You speak first (no greeting from the agent)."),
    heartbeat_every: Optional[float] = typer.Option(
        None, "--heartbeat-every", min=0.05, metavar="MINUTES",
        help="Timed heartbeats: wake the agent after MINUTES without a message (interactive sessions).",
    ),
    message: Optional[list[str]] = typer.Option(None, "--message", "-m", help="Send this message non-interactively (repeatable)."),
    non_interactive: bool = typer.Option(False, "--non-interactive", help="Read messages from stdin, one per line; print JSON lines."),
    debug: bool = typer.Option(False, "--debug", help="Log prompts, raw outputs and token counts to stderr."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept defaults without asking."),
) -> None:
    """Chat with an agent. Without --message / --non-interactive it is an interactive session."""
    import logging

    from memgpt.config import load_config
    from memgpt.runtime import AgentOptions, open_session

    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="[%(name)s] %(message)s")
    scripted = bool(message) or non_interactive or not sys.stdin.isatty()
    config = load_config()
    options = AgentOptions(
        name=agent, persona=persona, human=human, preset=preset,
        model=_overrides(model_endpoint_type, model_endpoint, model, model_wrapper, context_window, max_tokens),
        heartbeat_minutes=None if scripted else heartbeat_every,
    )
    from memgpt.cli import chat

    view = chat.JsonView() if scripted else chat.RichView()
    session = open_session(config, options, on_event=view.event)
    try:
        view.opened(session)
        if scripted:
            lines = message if message else (line.rstrip("\n") for line in sys.stdin)
            errors = chat.run_scripted(session, view, lines, greet=not first)
            if errors:
                raise typer.Exit(1)
        else:
            chat.run_interactive(session, view, greet=not first)
    finally:
        session.close()


def list_cmd(
    kind: str = typer.Argument(..., help="agents | personas | humans | presets"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List agents, personas, humans or presets."""
    from memgpt import catalog

    if kind not in LIST_KINDS:
        fail(f"unknown list {kind!r}; choose one of: {', '.join(LIST_KINDS)}", code=2)
    if kind == "agents":
        from memgpt.config import load_config
        from memgpt.runtime import open_storage

        storage = open_storage(load_config())
        try:
            rows = [
                {
                    "name": r.name,
                    "persona": r.settings.get("persona"),
                    "human": r.settings.get("human"),
                    "preset": r.settings.get("preset"),
                    "backend": r.settings.get("model", {}).get("backend"),
                    "wrapper": r.settings.get("model", {}).get("wrapper"),
                    "messages": storage.count_messages(r.name),
                    "passages": storage.count_passages(r.name),
                    "created_at": r.created_at.isoformat(),
                }
                for r in storage.list_agents()
            ]
        finally:
            storage.close()
    else:
        rows = [{"name": n} for n in catalog.names(kind)]  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=kind)
    for column in rows[0] if rows else ["name"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def add(
    kind: str = typer.Argument(..., help="persona | human"),
    name: str = typer.Option(..., "--name", help="Name to save it under."),
    text: Optional[str] = typer.Option(None, "--text", help="The text."),
    file: Optional[Path] = typer.Option(None, "--file", exists=True, dir_okay=False, readable=True, help="Read the text from a file."),
) -> None:
    """Add your own persona or human description."""
    from memgpt import catalog

    kinds = {"persona": "personas", "human": "humans"}
    if kind not in kinds:
        fail(f"unknown kind {kind!r}; choose one of: persona, human", code=2)
    if (text is None) == (file is None):
        fail("give exactly one of --text or --file", code=2)
    body = text if text is not None else file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    try:
        path = catalog.add(kinds[kind], name, body)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc), code=2)
    typer.echo(f"Saved {kind} {name!r} to {path}")


def delete(
    kind: str = typer.Argument(..., help="agent"),
    name: str = typer.Argument(..., help="Name of the agent."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an agent with all its messages and archival memory."""
    from memgpt.config import home, load_config
    from memgpt.locking import AgentLock
    from memgpt.runtime import open_storage

    if kind != "agent":
        fail(f"unknown kind {kind!r}; only `memgpt delete agent NAME` is supported", code=2)
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete agent {name!r} and all its memory?"):
        raise typer.Exit(1)
    with AgentLock(home(), name):  # never under a session that has it open
        storage = open_storage(load_config())
        try:
            if not storage.delete_agent(name):
                fail(f"no agent named {name!r} (see `memgpt list agents`)")
        finally:
            storage.close()
    typer.echo(f"Deleted agent {name!r}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("list")(list_cmd)
    app.command("add")(add)
    app.command("delete")(delete)
    from memgpt.cli import load_cmd

    app.command("load")(load_cmd.load)
