"""Figures the fault suites measure (kills survived, faults tried), printed at the end of the test run
by ``pytest_terminal_summary`` in ``tests/conftest.py``."""

from __future__ import annotations

FIGURES: dict[str, list[str]] = {}


def record(what: str, value: str) -> None:
    FIGURES.setdefault(what, []).append(value)
