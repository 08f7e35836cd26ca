"""``memgpt export agent`` / ``memgpt import`` and ``memgpt search`` as a user runs them (the console script
on the scripted backend and the ``words`` test embedder, so no model loads)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memgpt.cli.app import get_app
from memgpt.storage.sqlite import SQLiteStorage

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"


def memgpt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    env.pop("MEMGPT_TRACEBACK", None)
    return subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with agent sam: a conversation, an archival document and a pending message."""
    root = tmp_path_factory.mktemp("export")
    home = root / "home"
    assert memgpt(home, "configure", "--yes", "--backend", "scripted", "--embedding-provider", "words").returncode == 0
    made = memgpt(home, "run", "--agent", "sam", "--first", "-m", "I love hiking in the Alps", "-m", "My cat is called Tom")
    assert made.returncode == 0, made.stderr
    docs = root / "docs"
    docs.mkdir()
    (docs / "zoo.txt").write_text("Zebras are striped and live in herds on the savanna.")
    (docs / "kitchen.txt").write_text("Bake the bread at two hundred degrees for forty minutes.")
    assert memgpt(home, "load", "--agent", "sam", str(docs)).returncode == 0
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        record = storage.get_agent("sam")
        assert record is not None
        record.settings["pending_message"] = "are you still there?"
        record.core_memory["human"] = "Name: Ann. Likes hiking."
        storage.save_agent(record)
    finally:
        storage.close()
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = Path(shutil.copytree(template, tmp_path / "home"))
    monkeypatch.setenv("MEMGPT_HOME", str(home))
    return home


def cli(*args: str) -> Any:
    """The same commands in this process (the home of the ``home`` fixture; the test embedder)."""
    return CliRunner().invoke(get_app(), list(args))


def snapshot(home: Path, name: str) -> dict[str, Any]:
    """What must survive a round trip: the record, the whole conversation, the context window, archival."""
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        record = storage.get_agent(name)
        assert record is not None
        messages = storage.recent_messages(name, storage.count_messages(name))
        ids = {m.id: i for i, m in enumerate(messages)}
        return {
            "settings": record.settings,
            "core_memory": record.core_memory,
            "in_context": [ids[i] for i in record.in_context],
            "messages": [m.model_dump(exclude={"id"}) for m in messages],
            "passages": [(p.text, p.metadata) for p in storage.iter_passages(name)],
        }
    finally:
        storage.close()


def searched(*args: str) -> list[tuple[str, Any]]:
    result = cli("search", *args, "--json")
    assert result.exit_code == 0, result.output
    return [(row["text"], row.get("score")) for row in json.loads(result.stdout)["results"]]


def test_export_then_import_under_a_new_name_is_the_same_agent(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "sam.json"
    exported = memgpt(home, "export", "agent", "sam", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    data = json.loads(out.read_text())
    assert data["format"] == "memgpt-agent" and data["version"] == 1
    assert data["embedder"]["dimensions"] == 26 and data["embedder"]["name"].startswith("words/")
    assert len(base64.b64decode(data["passages"][0]["embedding"])) == 26 * 4
    imported = memgpt(home, "import", str(out), "--name", "sam2")
    assert imported.returncode == 0, imported.stderr
    assert "6 messages, 2 passages" in imported.stdout and "embedded again" not in imported.stdout
    before, after = snapshot(home, "sam"), snapshot(home, "sam2")
    assert after == before
    assert after["settings"]["pending_message"] == "are you still there?"
    assert len(after["messages"]) == 6 and any(m["function_call"] for m in after["messages"])
    for query in ("zebra herds", "bread"):
        assert searched("--agent", "sam2", "--archival", query) == searched("--agent", "sam", "--archival", query)
    assert searched("--agent", "sam2", "cat") == searched("--agent", "sam", "cat") == [("My cat is called Tom", None)]
    # the imported agent runs: its context window and pending message are its own
    resumed = memgpt(home, "run", "--agent", "sam2", "-m", "hello again")
    assert resumed.returncode == 0, resumed.stderr


def test_import_refuses_an_existing_name_and_leaves_it_alone(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    before = snapshot(home, "sam")
    result = cli("import", str(out))
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: an agent named 'sam' already exists; import it under another name with --name NEW"
    assert snapshot(home, "sam") == before


def test_import_embeds_again_when_the_embedder_differs(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    data["embedder"] = {"name": "other/model", "dimensions": 3}
    for passage in data["passages"]:
        passage["embedding"] = base64.b64encode(b"\x00\x00\x80\x3f" * 3).decode()
    out.write_text(json.dumps(data))
    result = cli("import", str(out), "--name", "copy")
    assert result.exit_code == 0, result.stderr
    assert "embedded again" in result.stdout
    assert searched("--agent", "copy", "--archival", "zebra") == searched("--agent", "sam", "--archival", "zebra")


class CountingEmbedder:
    """The test embedder, keeping every text it was asked to embed (``dimensions``: the size it claims)."""

    def __init__(self, dimensions: int = 26) -> None:
        from memgpt.testing.scripted import LetterEmbedder

        self.dimensions = dimensions
        self._letters = LetterEmbedder()
        self.embedded: list[str] = []

    def embed(self, texts: list[str]) -> Any:
        self.embedded.extend(texts)
        return self._letters.embed(texts)[:, : self.dimensions]


def stored_embeddings(home: Path, name: str) -> bytes:
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        return b"".join(matrix.tobytes() for _, matrix in storage.passage_batches(name))
    finally:
        storage.close()


def test_export_and_import_with_the_same_embedder_embed_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memgpt.cli import export_cmd

    embedder = CountingEmbedder()
    monkeypatch.setattr(export_cmd, "open_embedder", lambda config: embedder)
    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    imported = cli("import", str(out), "--name", "sam2")
    assert imported.exit_code == 0, imported.output
    assert "2 passages" in imported.stdout and "embedded again" not in imported.stdout
    assert embedder.embedded == []
    assert snapshot(home, "sam2") == snapshot(home, "sam")
    assert stored_embeddings(home, "sam2") == stored_embeddings(home, "sam")  # the very same rows
    # the control: a file labelled with another embedder is embedded again, each passage once
    data = json.loads(out.read_text())
    data["embedder"]["name"] = "other/model"
    out.write_text(json.dumps(data))
    again = cli("import", str(out), "--name", "sam3")
    assert again.exit_code == 0 and "embedded again with words/default" in again.stdout
    assert sorted(embedder.embedded) == sorted(p["text"] for p in data["passages"])


def test_stored_embeddings_of_another_size_are_exported_without_a_name_and_embedded_again(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive was built with another embedder than the configured one: the file does not claim it is
    that embedder's, and an import embeds the passages with its own."""
    from memgpt.cli import export_cmd

    embedder = CountingEmbedder(dimensions=3)
    monkeypatch.setattr(export_cmd, "open_embedder", lambda config: embedder)
    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert data["embedder"] == {"name": None, "dimensions": 26} and embedder.embedded == []
    imported = cli("import", str(out), "--name", "sam2")
    assert imported.exit_code == 0 and "embedded again" in imported.stdout
    assert sorted(embedder.embedded) == sorted(p["text"] for p in data["passages"])
    assert len(stored_embeddings(home, "sam2")) == 2 * 3 * 4


def damaged(data: dict[str, Any]) -> dict[str, str]:
    """Ways a file goes bad, each with what the one-line error says."""
    other = {**data, "version": 2}
    no_messages = {k: v for k, v in data.items() if k != "messages"}
    bad_vector = json.loads(json.dumps(data))
    bad_vector["passages"][1]["embedding"] = base64.b64encode(b"\x00" * 8).decode()
    bad_context = json.loads(json.dumps(data))
    bad_context["agent"]["in_context"].append(999)
    return {
        json.dumps(other): "export format version 2; this memgpt reads version 1",
        json.dumps(data)[:-200]: "is not a memgpt agent export (damaged JSON",
        json.dumps(no_messages): "damaged export (missing field 'messages')",
        json.dumps(bad_vector): "a passage's embedding does not have 26 dimensions",
        json.dumps(bad_context): "agent.in_context names a message the file does not have",
        "[1, 2]": "not a memgpt agent export",
        "\xff": "not a memgpt agent export",
    }


def test_a_damaged_or_other_version_file_is_one_line_and_creates_nothing(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    for i, (text, expected) in enumerate(damaged(json.loads(out.read_text())).items()):
        bad = tmp_path / f"bad{i}.json"
        bad.write_text(text, encoding="latin-1" if text == "\xff" else "utf-8")
        result = cli("import", str(bad), "--name", f"new{i}")
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("Error: ") and expected in line, line
    names = json.loads(cli("list", "agents", "--json").stdout)
    assert [row["name"] for row in names] == ["sam"]
    missing = cli("import", str(tmp_path / "nope.json"))
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: cannot read") and len(missing.stderr.splitlines()) == 1
    nobody = cli("export", "agent", "nobody")
    assert nobody.exit_code == 1 and nobody.stderr.strip() == "Error: no agent named 'nobody' (see `memgpt list agents`)"


def test_an_import_that_fails_in_storage_leaves_nothing(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent, its messages and its passages are one transaction: a failure in the last write undoes all."""
    from memgpt.cli import export_cmd
    from memgpt.errors import StorageError

    out = tmp_path / "sam.json"
    assert cli("export", "agent", "sam", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    data["embedder"]["name"] = "x"  # the same embedder as the file's: nothing is embedded again
    monkeypatch.setattr(export_cmd, "_embedder_name", lambda config: "x")

    class Failing(SQLiteStorage):
        def add_passages(self, *args: Any, **kwargs: Any) -> list[int]:
            raise StorageError("disk full")

    storage = Failing(home / "memgpt.db")
    try:
        with pytest.raises(StorageError):
            export_cmd.import_agent(storage, FakeConfig(), data, "half")
        assert storage.get_agent("half") is None
        assert storage.count_messages("half") == 0
        assert [r.name for r in storage.list_agents()] == ["sam"]
    finally:
        storage.close()


class FakeConfig:
    """Enough of a Config for ``import_agent``: the embedder of the file (``words`` is not registered here)."""

    class embedding:
        provider = "words"
        model = None


@pytest.fixture(autouse=True)
def _words_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, ``open_embedder`` gives the test embedder (the subprocesses register it themselves)."""
    from memgpt.cli import export_cmd
    from memgpt.testing.scripted import LetterEmbedder

    monkeypatch.setattr(export_cmd, "open_embedder", lambda config: LetterEmbedder())


def test_search_recall_and_archival_piped_are_plain_rows(home: Path) -> None:
    recall = cli("search", "--agent", "sam", "hiking")
    assert recall.exit_code == 0, recall.stderr
    header, *rows = recall.stdout.splitlines()
    assert header == "time\twho\ttext"
    assert [row.split("\t")[1:] for row in rows] == [["you", "I love hiking in the Alps"]]
    archival = cli("search", "--agent", "sam", "--archival", "zebra herds savanna", "--limit", "1")
    header, *rows = archival.stdout.splitlines()
    assert (
        header == "score\ttime\ttext"
        and len(rows) == 1
        and rows[0].endswith("Zebras are striped and live in herds on the savanna.")
    )
    replies = json.loads(cli("search", "--agent", "sam", "--recall", "reply", "--json").stdout)
    assert replies["total"] == 2 and {r["who"] for r in replies["results"]} == {"agent"}
    none = cli("search", "--agent", "sam", "xylophone")
    assert none.exit_code == 0 and none.stdout == "" and "No recall results" in none.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--agent", "nobody", "x"], "Error: no agent named 'nobody' (see `memgpt list agents`)"),
        (["--agent", "sam", "--archival", "--recall", "x"], "Error: give one of --archival or --recall"),
        (["--agent", "sam", "  "], "Error: the query is empty"),
    ],
)
def test_search_bad_input_is_one_line(home: Path, args: list[str], expected: str) -> None:
    result = cli("search", *args)
    assert result.exit_code != 0 and result.stderr.strip() == expected
