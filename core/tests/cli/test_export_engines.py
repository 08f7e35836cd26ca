"""Export and import go through the Storage protocol only: an agent exported from SQLite is imported into
PostgreSQL (a real server, pgvector) and back, the same agent each time, and a failed import into
PostgreSQL leaves nothing (skipped where the PostgreSQL plugin or its server binaries are missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memgpt.cli import export_cmd
from memgpt.contract.types import Message
from memgpt.errors import StorageError
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.scripted import LetterEmbedder
from memgpt.testing.storage import says, user

pg_testing = pytest.importorskip("memgpt_storage_postgres.testing")
pg_storage = pytest.importorskip("memgpt_storage_postgres.storage")


class Config:
    class embedding:
        provider = "letters"
        model = None


@pytest.fixture(autouse=True)
def _letters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_cmd, "open_embedder", lambda config: LetterEmbedder())


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    try:
        server = pg_testing.TempPostgres().start()
    except pg_testing.PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def postgres(server: Any) -> Iterator[Any]:
    uri = server.create_database()
    storage = pg_storage.PostgresStorage(uri)
    yield storage
    storage.close()
    server.drop_database(uri.rsplit("/", 1)[1].split("?")[0])


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStorage]:
    storage = SQLiteStorage(tmp_path / "memgpt.db")
    storage.save_agent(AgentRecord(name="sam", settings={"preset": "memgpt_chat", "pending_message": "hello?"}))
    said = storage.add_messages(
        "sam",
        [
            Message(role="system", content="the system prompt"),
            user("I keep bees in the garden"),
            says("Bees! How many hives?"),
            Message(role="function", name="send_message", content='{"status": "OK"}'),
            user("three hives, and a fig tree"),
            says("Figs and honey, then."),
        ],
    )
    record = storage.get_agent("sam")
    assert record is not None
    record.core_memory = {"persona": "I am Sam.", "human": "Keeps bees."}
    record.in_context = [m.id for m in said if m.id is not None][-4:]
    storage.save_agent(record)
    texts = ["The hives face south-east.", "Figs ripen in August.", "Honey is harvested in July."]
    storage.add_passages("sam", texts, LetterEmbedder().embed(texts), [{"source": "notes.txt"}, {}, {"n": 3}])
    yield storage
    storage.close()


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """An export without what differs by design: when it was made, the agent's name and times, passage times."""
    agent = {k: v for k, v in data["agent"].items() if k not in ("name", "created_at", "updated_at")}
    passages = [{k: v for k, v in p.items() if k != "created_at"} for p in data["passages"]]
    return {**data, "agent": agent, "passages": passages, "exported_at": None}


def searches(storage: Any, name: str) -> tuple[Any, ...]:
    recall = storage.search_messages(name, "hives")
    archival = storage.search_passages(name, LetterEmbedder().embed(["honey in july"])[0], limit=3)
    return (
        [m.model_dump(exclude={"id"}) for m in recall[0]],
        recall[1],
        [(p.text, p.metadata, round(p.score or 0, 5)) for p in archival[0]],
        archival[1],
    )


class Counting(LetterEmbedder):
    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: list[str]) -> Any:
        self.embedded.extend(texts)
        return super().embed(texts)


def test_sqlite_to_postgres_and_back_is_the_same_agent(
    sqlite: SQLiteStorage, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = Counting()
    monkeypatch.setattr(export_cmd, "open_embedder", lambda config: embedder)
    exported = export_cmd.export_agent(sqlite, Config(), "sam")
    assert export_cmd.import_agent(postgres, Config(), exported, "pg-sam") == ("pg-sam", 6, 3, False)
    again = export_cmd.export_agent(postgres, Config(), "pg-sam")
    assert comparable(again) == comparable(exported)
    assert searches(postgres, "pg-sam") == searches(sqlite, "sam")
    export_cmd.import_agent(sqlite, Config(), again, "back")
    assert comparable(export_cmd.export_agent(sqlite, Config(), "back")) == comparable(exported)
    assert embedder.embedded == []  # the stored embeddings travelled: nothing was embedded again


def test_a_failed_import_into_postgres_leaves_nothing(
    sqlite: SQLiteStorage, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = export_cmd.export_agent(sqlite, Config(), "sam")

    def fail(*args: Any, **kwargs: Any) -> list[int]:
        raise StorageError("disk full")

    monkeypatch.setattr(postgres, "add_passages", fail)
    with pytest.raises(StorageError):
        export_cmd.import_agent(postgres, Config(), exported, "half")
    assert postgres.get_agent("half") is None and postgres.list_agents() == []
