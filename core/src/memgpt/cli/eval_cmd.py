"""``memgpt eval``: run scenario suites on throwaway agents and print a scoreboard per wrapper.

Each run creates a new agent in a temporary MEMGPT_HOME of its own (SQLite, removed afterwards) with the
model settings given here or in the config; nothing touches the user's agents. See docs/eval.md.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from memgpt.cli.app import fail

ALL_GRAMMAR = "all-grammar"


def _wrappers(spec: str | None, default: str) -> list[str]:
    from memgpt.errors import UnknownNameError
    from memgpt.plugins import get_registry

    registry = get_registry()
    if spec is None:
        return [default]
    if spec.strip() == ALL_GRAMMAR:
        names = sorted(n for n in registry.wrappers if n.endswith("-grammar"))
        if not names:
            fail("no -grammar wrapper is registered (see `memgpt plugins`)")
        return names
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        fail(f"--wrappers needs names separated by commas, or {ALL_GRAMMAR}")
    try:
        return list(dict.fromkeys(registry.canonical("wrappers", registry.wrapper(n).name) for n in names))
    except UnknownNameError as exc:
        fail(str(exc))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "wrapper": r["wrapper"],
            "suite": r["suite"],
            "success": f"{_percent(r['success'])} ({r['checks_passed']}/{r['checks']})",
            "valid calls": _percent(r["valid_call_rate"]),
            "edits": _number(r["memory_edits"]),
            "searches": _number(r["searches"]),
            "steps/turn": _number(r["steps_per_turn"]),
            "prompt tok/turn": _number(r["prompt_tokens_per_turn"], 0),
            "s/turn": _number(r["seconds_per_turn"]),
            "errors": r["errors"],
        }
        for r in rows
    ]


class _Progress:
    """A progress bar on stderr while turns run; nothing when stderr is not a terminal."""

    def __init__(self, total: int) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.progress: Any = None
        self.total = total

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from memgpt.cli.chat import start_live

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("turns"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            start_live(self.progress)
            self.task = self.progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def phase(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=text)

    def grow(self) -> None:
        if self.progress is not None:
            self.total += 1
            self.progress.update(self.task, total=self.total)

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)


def eval_command(
    backend: Optional[str] = typer.Option(None, "--backend", "--model-endpoint-type", help="LLM backend name."),
    model_endpoint: Optional[str] = typer.Option(None, "--model-endpoint", help="Server URL (server backends)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, or a GGUF path for in-process backends."),
    wrappers: Optional[str] = typer.Option(
        None, "--wrappers", help=f"Wrappers to compare, separated by commas, or {ALL_GRAMMAR}; default: the configured one."
    ),
    suite: list[str] = typer.Option(
        [],
        "--suite",
        help="A built-in suite (retention, archival_qa, nested, robustness) or a suite file; repeatable; default: all built-in.",
    ),
    repeat: int = typer.Option(1, "--repeat", min=1, max=100, help="Runs of each suite per wrapper."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results (JSON) to this file."),
    chart: Optional[Path] = typer.Option(
        None, "--chart", help="Write the scoreboard chart (PNG) here; default: next to --out, else memgpt-eval-TIME.png."
    ),
    no_chart: bool = typer.Option(False, "--no-chart", help="Write no chart."),
) -> None:
    """Measure whether agents remember: scenario suites on throwaway agents, a scoreboard per wrapper."""
    from memgpt import __version__
    from memgpt.config import api_key_env_var, load_api_key, load_config
    from memgpt.errors import ConfigError, MemGPTError, UnknownNameError
    from memgpt.eval import builtin_suites, load_suite, run_suite, scoreboard
    from memgpt.eval import chart as charts
    from memgpt.plugins import get_registry

    config = load_config()
    updates = {k: v for k, v in {"backend": backend, "endpoint": model_endpoint, "model": model}.items() if v is not None}
    config = config.model_copy(update={"model": config.model.model_copy(update=updates)})
    try:
        get_registry().backend(config.model.backend)
    except UnknownNameError as exc:
        fail(str(exc))
    names = _wrappers(wrappers, config.model.wrapper)
    try:
        suites = [load_suite(s) for s in (suite or builtin_suites())]
    except ConfigError as exc:
        fail(str(exc))
    if out is not None and out.is_dir():
        fail(f"--out {out} is a folder; give a file name such as {out / 'results.json'}")
    # The throwaway homes have no credentials: the user's API key goes along in the environment.
    key_var = api_key_env_var(config.model.backend)
    key = load_api_key(config.model.backend)
    if key is not None and key_var not in os.environ:
        os.environ[key_var] = key.get_secret_value()

    planned = sum(len(s.turns) for st in suites for s in st.sessions) * len(names) * repeat
    runs = []
    started = datetime.now().astimezone()
    with _Progress(planned) as progress:
        for st in suites:
            for wrapper in names:
                for number in range(repeat):
                    progress.phase(f"{st.name} · {wrapper}" + (f" · run {number + 1}/{repeat}" if repeat > 1 else ""))
                    try:
                        runs.append(
                            run_suite(
                                config,
                                st,
                                wrapper,
                                repeat=number,
                                on_turn=lambda turn: progress.grow() if turn.fill else None,
                                progress=lambda record: progress.advance(),
                            )
                        )
                    except MemGPTError as exc:
                        fail(f"{st.name} with {wrapper}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    rows = scoreboard(runs)
    document = {
        "memgpt": __version__,
        "started": started.isoformat(timespec="seconds"),
        "backend": config.model.backend,
        "endpoint": config.model.endpoint,
        "model": config.model.model,
        "suites": [{"name": s.name, "source": s.source, "checks": s.checks} for s in suites],
        "wrappers": names,
        "repeat": repeat,
        "scoreboard": rows,
        "runs": [run.to_json() for run in runs],
    }
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}")
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        from memgpt.cli.tables import print_rows

        what = config.model.model or "the default model"
        print_rows(f"memgpt eval: {config.model.backend}, {what}", _table_rows(rows))
        if out is not None:
            typer.echo(f"results: {out}")
    _report_errors(runs)
    if not no_chart:
        path = chart or (out.with_suffix(".png") if out is not None else Path(f"memgpt-eval-{started:%Y%m%d-%H%M%S}.png"))
        if not charts.available():
            typer.echo(f"chart not written: {charts.MISSING}", err=True)
        else:
            try:
                title = f"memgpt eval · {config.model.backend} · {config.model.model or 'default model'}"
                written = charts.write_chart(rows, path, title)
            except OSError as exc:
                fail(f"cannot write the chart {path}: {exc.strerror or exc}")
            typer.echo(f"chart: {written}", err=as_json)


def _report_errors(runs: list[Any]) -> None:
    """Each distinct error a turn hit, once, with how many turns hit it (on stderr)."""
    seen: dict[tuple[str, str, str], int] = {}
    for run in runs:
        for turn in run.turns:
            if turn.error:
                key = (run.suite, run.wrapper, turn.error)
                seen[key] = seen.get(key, 0) + 1
    for (suite, wrapper, error), count in seen.items():
        typer.echo(f"error in {suite} with {wrapper} ({count} turn{'s' if count > 1 else ''}): {error}", file=sys.stderr)
