"""memgpt storage plugin: agents, recall and archival memory in PostgreSQL with pgvector.

Select it with ``memgpt configure --storage postgres --storage-uri postgresql://user:password@host/db``
(the password goes to the credentials file). See ``memgpt_storage_postgres.storage``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memgpt import hookimpl


def open_postgres(home: Path, options: Any) -> Any:
    from memgpt.errors import StorageError
    from memgpt_storage_postgres.storage import PostgresStorage

    if options.uri is None:
        raise StorageError(
            "storage 'postgres' has no database URI; run `memgpt configure --storage postgres "
            "--storage-uri postgresql://user:password@host:5432/memgpt`"
        )
    return PostgresStorage(options.uri.get_secret_value())


@hookimpl
def register_storage(register: Any) -> None:
    from memgpt.storage.spec import StorageSpec

    register(
        StorageSpec(
            name="postgres",
            factory=open_postgres,
            description="PostgreSQL + pgvector, shared by many processes and machines (--storage-uri)",
            needs_uri=True,
        )
    )


@hookimpl
def register_commands(register: Any) -> None:
    from memgpt.cli.spec import CommandSpec
    from memgpt_storage_postgres.migrate import migrate

    register(CommandSpec(name="migrate", callback=migrate, help="Copy the SQLite store into PostgreSQL (--to postgres)."))
