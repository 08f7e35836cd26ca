"""`memgpt configure --storage postgres --storage-uri ...` and scripted `memgpt run` turns on a real PostgreSQL:
the password lives in the credentials file only, the turns land in the database, a second session on
the same agent is refused while the first holds it, and bad URIs are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg
import pytest

from memgpt.config import home, load_config, load_storage_uri
from memgpt_storage_postgres.storage import PostgresStorage
from memgpt_storage_postgres.testing import TempPostgres

# memgpt with a scripted backend registered through the real plugin path (core's CLI test launcher).
LAUNCHER = Path(__file__).resolve().parents[3] / "core" / "tests" / "cli" / "scripted_memgpt.py"


def memgpt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180
    )


@pytest.fixture
def secret_uri(postgres_server: TempPostgres, postgres_uri: str) -> str:
    """The test database as a role with a password (trust auth ignores it, but it must round-trip)."""
    database = postgres_uri.rsplit("/", 1)[1].split("?")[0]
    return f"postgresql://postgres:s3cr%40t@/{database}?host={postgres_server.root}"


def test_configure_keeps_the_password_out_of_the_config(secret_uri: str) -> None:
    result = memgpt("configure", "--yes", "--backend", "scripted", "--storage", "postgres", "--storage-uri", secret_uri)
    assert result.returncode == 0, result.stderr
    config_text = (home() / "config.toml").read_text()
    assert "s3cr" not in config_text and "postgres@/" in config_text
    credentials = home() / "credentials.toml"
    assert (credentials.stat().st_mode & 0o777) == 0o600
    assert tomllib.loads(credentials.read_text())["storage"]["postgres"]["password"] == "s3cr%40t"
    config = load_config()
    assert config.storage.engine == "postgres"
    restored = load_storage_uri(config.storage)
    assert restored is not None and restored.get_secret_value() == secret_uri
    assert "s3cr" not in repr(restored)
    # configuring again without --storage-uri keeps the URI and its password
    assert memgpt("configure", "--yes", "--storage", "postgres").returncode == 0
    assert load_storage_uri(load_config().storage).get_secret_value() == secret_uri  # type: ignore[union-attr]


def test_two_scripted_turns_land_in_postgres(postgres_uri: str) -> None:
    assert (
        memgpt("configure", "--yes", "--backend", "scripted", "--storage", "postgres", "--storage-uri", postgres_uri).returncode
        == 0
    )
    result = memgpt("run", "--agent", "pg", "--first", "--message", "my cat is called Tom", "--message", "what is my cat called?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    turns = [e for e in events if e["type"] == "turn"]
    assert len(turns) == 2
    assert not (home() / "memgpt.db").exists()  # nothing went to SQLite
    store = PostgresStorage(postgres_uri)
    try:
        record = store.get_agent("pg")
        assert record is not None and "pending_message" not in record.settings
        assert store.count_messages("pg") >= 6  # two user messages, each with a call and its result
        found, total = store.search_messages("pg", "cat Tom")
        assert total >= 1 and "Tom" in (found[0].content or "")
        assert store.get_messages("pg", record.in_context)  # the context list points at stored rows
    finally:
        store.close()
    listed = json.loads(memgpt("list", "agents", "--json").stdout)
    assert [row["name"] for row in listed] == ["pg"]


def test_a_second_session_on_the_same_agent_is_refused(postgres_uri: str) -> None:
    assert (
        memgpt("configure", "--yes", "--backend", "scripted", "--storage", "postgres", "--storage-uri", postgres_uri).returncode
        == 0
    )
    assert memgpt("run", "--agent", "busy", "--first", "--message", "hello").returncode == 0
    holder = PostgresStorage(postgres_uri)
    lock = holder.lock_agent("busy").acquire()  # another machine's session, as far as this one can tell
    try:
        result = memgpt("run", "--agent", "busy", "--first", "--message", "hello again")
        assert result.returncode != 0
        assert "open in another memgpt session" in result.stderr and "Traceback" not in result.stderr
    finally:
        lock.release()
        holder.close()
    assert memgpt("run", "--agent", "busy", "--first", "--message", "now it is free").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage", "postgres"], "needs --storage-uri"),
        (["--storage", "postgres", "--storage-uri", "not a uri"], "--storage-uri: 'not a uri' is not a database URI"),
    ],
)
def test_bad_storage_options_are_one_line_errors(args: list[str], message: str) -> None:
    result = memgpt("configure", "--yes", *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_database_is_one_line_naming_it_without_the_password(tmp_path: Path) -> None:
    uri = f"postgresql://postgres:hunter2@/memgpt?host={tmp_path}"  # no server listens there
    assert memgpt("configure", "--yes", "--backend", "scripted", "--storage", "postgres", "--storage-uri", uri).returncode == 0
    result = memgpt("run", "--agent", "x", "--first", "--message", "hi")
    assert result.returncode != 0
    assert "PostgreSQL database memgpt" in result.stderr and "server" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_missing_database_is_a_storage_error(postgres_server: TempPostgres) -> None:
    from memgpt.errors import StorageError

    with pytest.raises(StorageError, match=r"PostgreSQL database nosuchdb.*does not exist"):
        PostgresStorage(postgres_server.uri("nosuchdb"))
    with pytest.raises(psycopg.Error):  # (the raw driver would have raised this)
        psycopg.connect(postgres_server.uri("nosuchdb")).close()
