"""What ``register_commands`` registers: a CLI sub-command a plugin adds to ``memgpt``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CommandSpec:
    """``memgpt NAME``: ``callback`` is a typer command function (its parameters are the options)."""

    name: str
    callback: Callable[..., Any]
    help: str = ""
    plugin: str = ""
