"""``memgpt search --agent NAME QUERY``: an agent's memory searched from the shell.

Recall (the default) is the full-text search the agent's ``conversation_search`` uses; ``--archival`` is
the vector search of ``archival_memory_search``, with the configured embedder.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from memgpt.cli.app import fail
from memgpt.cli.completion_cmd import agent_names


def _recall_rows(storage: Any, agent: str, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    from memgpt.storage._recall import searchable_text

    found, total = storage.search_messages(agent, query, limit=limit)
    rows = [
        {
            "time": f"{m.created_at.astimezone():%Y-%m-%d %H:%M}",
            "who": "you" if m.role == "user" else "agent",
            "text": searchable_text(m) or m.content or "",
            "id": m.id,
            "created_at": m.created_at.isoformat(),
        }
        for m in found
    ]
    return rows, total


def _archival_rows(storage: Any, config: Any, agent: str, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    from memgpt.cli import export_cmd

    if storage.count_passages(agent) == 0:
        return [], 0
    embedder = export_cmd.open_embedder(config)
    found, total = storage.search_passages(agent, embedder.embed([query])[0], limit=limit)
    rows = [
        {
            "score": None if p.score is None else round(float(p.score), 4),
            "time": f"{p.created_at.astimezone():%Y-%m-%d %H:%M}",
            "text": p.text,
            "id": p.id,
            "created_at": p.created_at.isoformat(),
            "metadata": p.metadata,
        }
        for p in found
    ]
    return rows, total


def search(
    query: str = typer.Argument(..., help="What to look for."),
    agent: str = typer.Option(..., "--agent", help="The agent whose memory to search.", autocompletion=agent_names),
    archival: bool = typer.Option(False, "--archival", help="Search archival memory (by meaning)."),
    recall: bool = typer.Option(False, "--recall", help="Search the conversation (the default)."),
    limit: int = typer.Option(10, "--limit", min=1, max=1000, help="The most results to show."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Search an agent's conversation (recall, the default) or archival memory."""
    from memgpt.config import load_config
    from memgpt.session import open_storage

    if archival and recall:
        fail("give one of --archival or --recall", code=2)
    if not query.strip():
        fail("the query is empty", code=2)
    config = load_config()
    storage = open_storage(config)
    try:
        if storage.get_agent(agent) is None:
            fail(f"no agent named {agent!r} (see `memgpt list agents`)")
        if archival:
            rows, total = _archival_rows(storage, config, agent, query, limit)
        else:
            rows, total = _recall_rows(storage, agent, query, limit)
    finally:
        storage.close()
    kind = "archival" if archival else "recall"
    if as_json:
        typer.echo(json.dumps({"memory": kind, "total": total, "results": rows}, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(f"No {kind} results for {query!r}.", err=True)
        return
    from memgpt.cli.tables import print_rows

    columns = ["score", "time", "text"] if archival else ["time", "who", "text"]
    print_rows(f"{kind} memory of {agent}: {len(rows)} of {total}", rows, columns=columns)
