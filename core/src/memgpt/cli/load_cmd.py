"""``memgpt load --agent NAME PATH…``: chunk text files into an agent's archival memory.

Files are read, chunked, embedded and stored one at a time, a batch of passages per transaction. A passage
whose text the agent's archival memory already holds is not stored again (compared by SHA-256 of the
text), so loading the same file twice stores it once and an interrupted load is finished by running the
same command again. On a terminal a progress display runs from the start (the embedding model takes a
while to load); Ctrl-C stops after saying what was stored.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from memgpt.cli.app import fail
from memgpt.cli.completion_cmd import agent_names


def content_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Tally:
    """What a load did so far: for the progress display, the summary and an interrupt's report."""

    def __init__(self, files: int) -> None:
        self.files = files
        self.files_done = 0
        self.chunks = 0
        self.stored = 0
        self.duplicates = 0
        self.started: float | None = None  # when embedding began

    def rate(self) -> str:
        if self.started is None or not self.stored:
            return ""
        return f"{self.stored / max(time.monotonic() - self.started, 1e-9):.1f} passages/s"

    def summary(self, agent: str) -> str:
        text = f"{self.stored} passages from {self.files_done} of {self.files} files into {agent!r}'s archival memory"
        if self.duplicates:
            text += f"; {self.duplicates} already stored were skipped"
        return text


def _unmatched_note(unmatched: list[Path]) -> str:
    counts = Counter(p.suffix.lower() or "(no suffix)" for p in unmatched)
    kinds = ", ".join(f"{suffix} ×{n}" for suffix, n in counts.most_common())
    example = next((s for s, _ in counts.most_common() if s != "(no suffix)"), None)
    how = f"--glob '*{example}'" if example else "--glob PATTERN"
    return f"left out {len(unmatched)} files that are not text or markdown by name ({kinds}); load them with {how}"


def load(
    paths: list[Path] = typer.Argument(..., help="Text / markdown files or directories to load."),
    agent: str = typer.Option(
        ..., "--agent", help="The agent whose archival memory receives the text.", autocompletion=agent_names
    ),
    glob: list[str] = typer.Option(
        [],
        "--glob",
        help="In directories, load the files whose name (or path below the directory) matches PATTERN, e.g. "
        "'*.py' (repeatable); instead of the default: text and markdown files.",
        metavar="PATTERN",
    ),
    batch: int = typer.Option(32, "--batch", min=1, help="Chunks embedded per batch."),
) -> None:
    """Load files into an agent's archival memory (chunked, embedded, one transaction per batch; text already
    stored is skipped)."""
    from memgpt.config import load_config
    from memgpt.errors import LoadError
    from memgpt.memory.chunking import collect_files
    from memgpt.session import open_storage

    config = load_config()
    skipped: list[tuple[Path, str]] = []
    unmatched: list[Path] = []
    files = collect_files(paths, globs=glob, skipped=skipped, unmatched=unmatched)
    for path, why in skipped:
        typer.echo(f"skipped {path}: {why}", err=True)
    if unmatched:
        typer.echo(_unmatched_note(unmatched), err=True)
    if not files:
        fail("no text files to load under the given paths" + (" matching --glob" if glob else ""))
    storage = open_storage(config)
    tally = Tally(len(files))
    try:
        if storage.get_agent(agent) is None:
            fail(f"no agent named {agent!r}: create it with `memgpt run --agent {agent}` first (see `memgpt list agents`)")
        with _Display(tally) as display:
            _load_files(config, storage, agent, files, batch, tally, display)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: stored {tally.summary(agent)} before the interrupt; run the same command again to load the "
            "rest (passages already stored are skipped)",
            err=True,
        )
        raise typer.Exit(130) from None
    except LoadError as exc:
        fail(f"{exc} (stored {tally.summary(agent)} before it)")
    finally:
        storage.close()
    typer.echo(f"Loaded {tally.summary(agent)}")


def _load_files(config: Any, storage: Any, agent: str, files: list[Path], batch: int, tally: Tally, display: Any) -> None:
    from memgpt.memory.chunking import chunk_text, chunking_for, read_file
    from memgpt.plugins import get_registry

    display.phase("loading the embedding model")
    embedder = get_registry().embedder(config.embedding.provider).factory(config.embedding.model)
    plan = chunking_for(embedder)  # loads the model when it declares its limits
    display.phase("reading what is already stored")
    known = {content_hash(p.text) for p in storage.iter_passages(agent)}
    for number, path in enumerate(files, 1):
        display.phase(f"file {number}/{len(files)}: chunking {path.name}")
        text, encoding = read_file(path)
        if not encoding.startswith("utf-8"):
            display.note(f"read {path} as {encoding}")
        pieces: list[tuple[str, str]] = []
        for piece in chunk_text(text, **plan):
            digest = content_hash(piece)
            if digest in known:
                tally.duplicates += 1
                continue
            known.add(digest)
            pieces.append((piece, digest))
        tally.chunks += len(pieces)
        display.phase(f"file {number}/{len(files)}: embedding {path.name}")
        for start in range(0, len(pieces), batch):
            part = pieces[start : start + batch]
            if tally.started is None:
                tally.started = time.monotonic()
            vectors = embedder.embed([text for text, _ in part])
            with storage.transaction():
                storage.add_passages(
                    agent,
                    [text for text, _ in part],
                    vectors,
                    [{"source": str(path), "sha256": digest} for _, digest in part],
                )
            tally.stored += len(part)
            display.update()
        tally.files_done += 1
        display.update()


class _Display:
    """The progress display on a terminal (stderr): what is being done, files, chunks, passages stored,
    passages per second. Nothing when stderr is not a terminal."""

    def __init__(self, tally: Tally) -> None:
        from rich.console import Console

        self.tally = tally
        self.console = Console(stderr=True, highlight=False)
        self.progress: Any = None

    def __enter__(self) -> _Display:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("passages · {task.fields[files]} · {task.fields[rate]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            from memgpt.cli.chat import start_live

            start_live(self.progress)
            self.task = self.progress.add_task("starting", total=None, files="", rate="")
            self.update()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def phase(self, what: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=what)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False)

    def update(self) -> None:
        if self.progress is not None:
            t = self.tally
            self.progress.update(
                self.task,
                total=t.chunks or None,
                completed=t.stored,
                files=f"{t.files_done}/{t.files} files",
                rate=t.rate(),
            )
