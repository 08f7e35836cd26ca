"""The storage contract registered through ``register_storage``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr


@dataclass(frozen=True)
class StorageOptions:
    """What the config says about the storage beyond its name. ``uri``: where the engine's database is
    (``memgpt configure --storage-uri``), its password filled in from the credentials file; never print it."""

    uri: SecretStr | None = None


@dataclass(frozen=True)
class StorageSpec:
    """A named storage engine. ``factory(home)`` or ``factory(home, options)`` opens (creating if needed)
    the store for the MemGPT home directory ``home`` and returns an object implementing
    ``memgpt.storage.base.Storage``; a factory that takes a second argument gets the ``StorageOptions``.
    ``needs_uri``: the engine cannot open without ``options.uri`` (``memgpt configure`` asks for it)."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""
    needs_uri: bool = False

    def open(self, home: Path, options: StorageOptions | None = None) -> Any:
        if _positional_arity(self.factory) >= 2:
            return self.factory(home, options or StorageOptions())
        return self.factory(home)


def _positional_arity(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return 2
    return sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds)
