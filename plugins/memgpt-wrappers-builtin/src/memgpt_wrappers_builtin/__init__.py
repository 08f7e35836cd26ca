"""memgpt prompt wrappers for the common open model families."""

from __future__ import annotations

from typing import Any

from memgpt import hookimpl


@hookimpl
def register_wrappers(register: Any) -> None:
    """Registers nothing yet."""
