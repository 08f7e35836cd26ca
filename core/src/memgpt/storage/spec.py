"""The storage contract registered through ``register_storage``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StorageSpec:
    """A named storage engine. ``factory(home)`` opens (creating if needed) the store under the MemGPT
    home directory ``home`` and returns an object implementing ``memgpt.storage.base.Storage``."""

    name: str
    factory: Callable[[Path], Any]
    description: str = ""
    plugin: str = ""
