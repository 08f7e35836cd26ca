"""Which agent ``memgpt run`` opens, and what it tells the user about the options it was given.

Without ``--agent`` an interactive run offers the saved agents (most recently used first) or a new one;
a new agent's generated name is unique even when two runs start in the same second. Options that an
existing agent cannot take (its persona and human are in its memory now), or that the backend caps, are
reported instead of being dropped silently.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import datetime
from typing import Any

import typer

from memgpt.agent.state import AgentState
from memgpt.cli.app import fail
from memgpt.config import Config


def saved_agents(config: Config) -> list[Any]:
    """The saved agents' records, most recently used first."""
    from memgpt.session import open_storage

    storage = open_storage(config)
    try:
        return sorted(storage.list_agents(), key=lambda r: r.updated_at, reverse=True)
    finally:
        storage.close()


def new_agent_name(taken: Collection[str], *, now: datetime | None = None, pid: int | None = None) -> str:
    """``agent_<date>_<time>_<pid>``: the process id keeps two runs started in the same second apart."""
    base = f"{(now or datetime.now()).strftime('agent_%Y%m%d_%H%M%S')}_{os.getpid() if pid is None else pid}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


#: How many saved agents the picker numbers; the others are opened by name.
PICK_SHOWN = 20


def pick(agents: list[Any]) -> str | None:
    """Ask which saved agent to open; None = a new one. Asks nothing when there is none."""
    if not agents:
        return None
    from rich.console import Console

    from memgpt.cli.line_input import clean_line, enable_line_editing

    enable_line_editing()
    console = Console(highlight=False)
    console.print("[bold]Saved agents[/] (most recent first):")
    shown = agents[:PICK_SHOWN]
    for i, record in enumerate(shown, 1):
        model = AgentState.load(record.settings).model
        console.print(
            f"  {i:>2}. {record.name}  [dim]{model.get('backend', '?')} / {model.get('wrapper', '?')}, "
            f"last used {record.updated_at:%Y-%m-%d %H:%M}[/]",
        )
    if len(agents) > len(shown):
        console.print(f"  … and {len(agents) - len(shown)} more (`memgpt list agents`): type a name to open one of them")
    names = [r.name for r in shown]
    while True:
        answer = clean_line(
            typer.prompt("Agent to open (number or name; blank = a new agent)", default="", show_default=False)
        ).strip()
        if not answer:
            return None
        if answer.isdigit():
            if 1 <= int(answer) <= len(names):
                chosen: str = names[int(answer) - 1]
                return chosen
            console.print(f"[red]choose 1 to {len(names)}, a name, or blank for a new agent[/]")
            continue
        return answer  # a saved agent by name, or a new agent with that name


def check_endpoint_flags(config: Config, existing: Any, backend: str | None, endpoint: str | None) -> None:
    """``--model-endpoint`` alone applies to the backend already in use; refuse it when that backend
    takes no endpoint (it would be ignored), and refuse an endpoint that is not an http(s) URL."""
    if endpoint is None:
        return
    from memgpt.config import check_endpoint
    from memgpt.plugins import get_registry

    try:
        check_endpoint(endpoint)
    except ValueError as exc:
        fail(f"--model-endpoint: {exc}", code=2)
    if backend is not None:
        return
    current = (AgentState.load(existing.settings).model.get("backend") if existing else None) or config.model.backend
    registry = get_registry()
    if not registry.backend(current).needs_endpoint:
        servers = ", ".join(sorted(n for n, s in registry.backends.items() if s.needs_endpoint)) or "(none installed)"
        fail(
            f"--model-endpoint needs --model-endpoint-type: the backend in use, {current!r}, runs in process and takes "
            f"no endpoint (server backends: {servers})",
            code=2,
        )


def ignored_options(existing: Any, *, persona: str | None, human: str | None) -> list[str]:
    """Notes for options an existing agent does not take."""
    if existing is None:
        return []
    notes = []
    state = AgentState.load(existing.settings)
    for flag, value in (("persona", persona), ("human", human)):
        saved = state.persona if flag == "persona" else state.human
        if value is not None and value != saved:
            notes.append(
                f"--{flag} {value!r} is ignored: agent {existing.name!r} already exists (created with {flag} {saved!r}) and "
                "its memory is its own now; /memory shows it, or start a new agent to use this one"
            )
    return notes


def capped(session: Any, requested: int | None) -> list[str]:
    """A note when the context window is smaller than asked (the backend's model allows no more)."""
    actual = session.agent.context_window
    if requested is None or actual >= requested:
        return []
    return [f"context window is {actual} tokens, not the {requested} asked for: the backend's model allows no more"]


def canonical_names(backend: str | None, wrapper: str | None) -> tuple[str | None, str | None]:
    """Backend and wrapper names as registered, whatever their case (``zephyr-7B-grammar``)."""
    if backend is None and wrapper is None:
        return backend, wrapper
    from memgpt.plugins import get_registry

    registry = get_registry()
    return (
        registry.canonical("backends", backend) if backend is not None else None,
        registry.canonical("wrappers", wrapper) if wrapper is not None else None,
    )
