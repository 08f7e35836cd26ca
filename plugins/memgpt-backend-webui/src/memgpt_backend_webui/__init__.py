"""memgpt backend plugin: webui."""

from __future__ import annotations

from typing import Any

from memgpt import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    """Registers nothing yet."""
