"""Contract tests that plugins subclass: core owns the contract, each plugin proves it meets it.

- ``memgpt.testing.BackendContract`` (and ``HTTPFaultContract`` for server backends): for
  ``register_backends`` plugins.
- ``memgpt.testing.WrapperContract``: for ``register_wrappers`` plugins.
- ``memgpt.testing.StorageContract``: for ``register_storage`` plugins.

The contracts import pytest, so they are loaded on first use: ``memgpt.testing.scripted`` (a scripted
backend and agent assembly for benches and tests) stays importable without it.
"""

from __future__ import annotations

from typing import Any

_CONTRACTS = {
    "BackendContract": "memgpt.testing.backend",
    "HTTPFaultContract": "memgpt.testing.backend",
    "StorageContract": "memgpt.testing.storage",
    "WrapperContract": "memgpt.testing.wrapper",
}

__all__ = sorted(_CONTRACTS)


def __getattr__(name: str) -> Any:
    module = _CONTRACTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
