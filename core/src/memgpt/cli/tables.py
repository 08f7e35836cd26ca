"""Listings for people and for pipes: a table in a terminal, plain tab-separated rows otherwise.

The first column is what the user types next (an agent's name): it is never cut or folded. The other
columns wrap to make room, and those that would not fit at a readable width are left out of the table
(in the order given, the last first) with a line saying which, and that ``--json`` has them all.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

#: A column narrower than this is not worth showing: it would wrap every value into a tall, thin strip.
MIN_COLUMN = 10
#: What a column costs besides its text: one space of padding on each side and a border.
COLUMN_COST = 3


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _fitting(columns: list[str], rows: Sequence[dict[str, Any]], width: int) -> list[tuple[str, int]]:
    """The first column at its full width, then as many of the others (in order) as fit ``width`` at a
    readable width; each with the least width it gets."""
    first, *others = columns
    name_width = max([len(first), *(len(_text(row.get(first))) for row in rows)])
    shown = [(first, name_width)]
    used = 1 + name_width + COLUMN_COST
    for column in others:
        longest = max([len(column), *(len(_text(row.get(column))) for row in rows)])
        least = min(longest, max(MIN_COLUMN, len(column)))
        if used + least + COLUMN_COST > width:
            break
        shown.append((column, least))
        used += least + COLUMN_COST
    return shown


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
    shown = _fitting(columns, rows, console.width)
    table = Table(title=title)
    (first, name_width), *others = shown
    table.add_column(first, no_wrap=True, overflow="ignore", min_width=name_width)
    for column, least in others:
        table.add_column(column, overflow="fold", min_width=least)
    for row in rows:
        table.add_row(*(_text(row.get(c)) for c, _ in shown))
    console.print(table, crop=False)
    hidden = columns[len(shown) :]
    if hidden:
        console.print(f"[dim]not shown at this width: {', '.join(hidden)} (--json has every field)[/]")
