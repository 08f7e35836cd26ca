"""``memgpt load --agent NAME PATH…``: chunk text and markdown files into an agent's archival memory."""

from __future__ import annotations

from pathlib import Path

import typer

from memgpt.cli.app import fail


def load(
    paths: list[Path] = typer.Argument(..., help="Text / markdown files or directories to load."),
    agent: str = typer.Option(..., "--agent", help="The agent whose archival memory receives the text."),
    batch: int = typer.Option(32, "--batch", min=1, help="Chunks embedded per batch."),
) -> None:
    """Load files into an agent's archival memory (chunked, embedded, one transaction per batch)."""
    from rich.progress import Progress

    from memgpt.config import load_config
    from memgpt.memory.chunking import chunk_text, chunking_for, collect_files, read_text
    from memgpt.plugins import get_registry
    from memgpt.runtime import open_storage

    config = load_config()
    skipped: list[tuple[Path, str]] = []
    files = collect_files(paths, skipped=skipped)
    for path, why in skipped:
        typer.echo(f"skipped {path}: {why}", err=True)
    if not files:
        fail("no text or markdown files found under the given paths")
    storage = open_storage(config)
    try:
        if storage.get_agent(agent) is None:
            fail(f"no agent named {agent!r}: create it with `memgpt run --agent {agent}` first (see `memgpt list agents`)")
        embedder = get_registry().embedder(config.embedding.provider).factory(config.embedding.model)
        plan = chunking_for(embedder)
        chunks = [(path, piece) for path in files for piece in chunk_text(read_text(path), **plan)]
        with Progress(transient=True) as progress:
            task = progress.add_task("embedding", total=len(chunks))
            for start in range(0, len(chunks), batch):
                part = chunks[start : start + batch]
                vectors = embedder.embed([text for _, text in part])
                with storage.transaction():
                    storage.add_passages(agent, [text for _, text in part], vectors, [{"source": str(path)} for path, _ in part])
                progress.advance(task, len(part))
    finally:
        storage.close()
    typer.echo(f"Loaded {len(chunks)} passages from {len(files)} files into {agent!r}'s archival memory")
