"""memgpt backend plugin: koboldcpp."""

from __future__ import annotations

from typing import Any

from memgpt import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    """Registers nothing yet."""
