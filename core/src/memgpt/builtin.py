"""Core's own plugin: registered through the ``memgpt`` entry-point group like any other plugin.

It provides what core ships by default (the call grammar builder, SQLite storage, the local embedder and
the MemGPT memory functions); a third-party plugin can register alternatives under other names.
"""

from __future__ import annotations

from typing import Any

from memgpt import hookimpl
