"""``memgpt plugins``: what is installed, what each plugin registers, what each backend was verified against, and
what failed to load."""

from __future__ import annotations

import json

import typer


def plugins(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures."),
) -> None:
    """List installed plugins, what each registers, and load failures."""
    from memgpt.plugins import KINDS, get_registry

    registry = get_registry()
    if as_json:
        data = {
            "plugins": [
                {
                    "name": p.name,
                    "module": p.module,
                    "distribution": p.distribution,
                    "version": p.version,
                    "hooks": p.hooks,
                    "registers": {kind: sorted(p.registered.get(kind, [])) for kind in KINDS.values() if p.registered.get(kind)},
                }
                for p in registry.plugins
            ],
            "backends": [
                {
                    "name": name,
                    "plugin": spec.plugin,
                    "description": spec.description,
                    "default_endpoint": spec.default_endpoint if spec.needs_endpoint else None,
                    "in_process": not spec.needs_endpoint,
                    "verified": spec.verified_against,
                }
                for name, spec in sorted(registry.backends.items())
            ],
            "failures": [
                {"plugin": f.plugin, "distribution": f.distribution, "stage": f.stage, "error": f.error}
                for f in registry.failures
            ],
        }
        typer.echo(json.dumps(data, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="memgpt plugins")
    table.add_column("plugin", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("registers", no_wrap=True)
    table.add_column("names", overflow="fold")
    for p in registry.plugins:
        kinds = [(kind, ", ".join(sorted(names))) for kind, names in p.registered.items() if names] or [("(nothing)", "")]
        for i, (kind, names) in enumerate(kinds):
            first = i == 0
            table.add_row(
                p.name if first else "",
                f"{p.distribution or '?'} {p.version or '?'}" if first else "",
                kind,
                names,
                end_section=i == len(kinds) - 1,
            )
    console.print(table)
    if registry.backends:
        backends = Table(title="backends")
        backends.add_column("backend", no_wrap=True)
        backends.add_column("plugin", no_wrap=True)
        backends.add_column("default endpoint", no_wrap=True)
        backends.add_column("verified against", overflow="fold")
        for name, spec in sorted(registry.backends.items()):
            where = (spec.default_endpoint or "(none)") if spec.needs_endpoint else "in process"
            backends.add_row(name, spec.plugin, where, spec.verified_against)
        console.print(backends)
    if registry.failures:
        console.print(f"[bold red]{len(registry.failures)} load failure(s):[/]")
        for failure in registry.failures:
            console.print(f"  [red]✗[/] {failure.line()}", markup=True, highlight=False)
            if verbose and failure.detail:
                console.print(failure.detail, markup=False, highlight=False)
