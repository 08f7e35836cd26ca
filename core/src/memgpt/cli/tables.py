"""Listings for people and for pipes: a table in a terminal, plain tab-separated rows otherwise.

The first column is what the user types next (an agent's name): it is never cut or folded; the other
columns wrap to make room.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def print_rows(title: str, rows: Sequence[dict[str, Any]], *, columns: Sequence[str] | None = None) -> None:
    """Print ``rows`` (dicts with the same keys) as a table on a terminal, as TSV with a header when piped."""
    columns = list(columns or (rows[0] if rows else ["name"]))
    if not sys.stdout.isatty():
        sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_text(row.get(c)).replace("\t", " ").replace("\n", " ") for c in columns) + "\n")
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    first, *others = columns
    widest = max((len(_text(row.get(first))) for row in rows), default=len(first))
    table.add_column(first, no_wrap=True, overflow="ignore", min_width=max(widest, len(first)))
    for column in others:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_text(row.get(c)) for c in columns))
    console.print(table, crop=False)
