"""`memgpt list | add | delete | load | run` as a user or a script drives them (real SQLite, real MiniLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memgpt.cli.app import get_app
from memgpt.config import home
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(get_app(), list(args))


def make_agent(name: str) -> None:
    storage = SQLiteStorage(home() / "memgpt.db")
    try:
        storage.save_agent(
            AgentRecord(
                name=name,
                settings={"persona": "sam_pov", "model": {"backend": "llamacpp"}},
                core_memory={"persona": "p", "human": "h"},
            )
        )
    finally:
        storage.close()


def test_add_then_list_personas_and_humans() -> None:
    assert invoke("add", "persona", "--name", "pirate", "--text", "Arr, I be a pirate.").exit_code == 0
    personas = {row["name"] for row in json.loads(invoke("list", "personas", "--json").output)}
    assert {"pirate", "sam_pov"} <= personas
    humans = {row["name"] for row in json.loads(invoke("list", "humans", "--json").output)}
    assert {"basic", "cs_phd"} <= humans
    presets = {row["name"] for row in json.loads(invoke("list", "presets", "--json").output)}
    assert "memgpt_chat" in presets


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_add_refuses_names_that_are_not_plain_file_names(name: str) -> None:
    result = invoke("add", "human", "--name", name, "--text", "x")
    assert result.exit_code == 2 and "invalid name" in result.output


def test_list_and_delete_agents() -> None:
    assert json.loads(invoke("list", "agents", "--json").output) == []
    make_agent("ann")
    (row,) = json.loads(invoke("list", "agents", "--json").output)
    assert row["name"] == "ann" and row["messages"] == 0 and row["persona"] == "sam_pov"
    assert invoke("delete", "agent", "ann", "--yes").exit_code == 0
    assert json.loads(invoke("list", "agents", "--json").output) == []
    missing = invoke("delete", "agent", "ann", "--yes")
    assert missing.exit_code == 1 and "no agent named 'ann'" in missing.output


def test_unknown_list_kind_lists_the_choices() -> None:
    result = invoke("list", "robots")
    assert result.exit_code == 2 and "agents, personas, humans, presets" in result.output


@pytest.mark.slow  # real MiniLM embeddings
def test_load_chunks_embeds_and_stays_inside_what_was_named(tmp_path: Path) -> None:
    make_agent("reader")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Garden\nThe tomatoes are planted along the south fence.\n\nWater them every morning.")
    (docs / "todo.txt").write_text("Buy a new bicycle chain before the race on Sunday.")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    secret = tmp_path / "secret.txt"
    secret.write_text("the vault code is 1234")
    (docs / "link.txt").symlink_to(secret)
    result = invoke("load", "--agent", "reader", str(docs))
    assert result.exit_code == 0, result.output
    assert "Loaded 2 passages from 2 of 2 files" in result.output
    storage = SQLiteStorage(home() / "memgpt.db")
    try:
        texts = [p.text for p in storage.iter_passages("reader")]
        assert not any("vault" in t for t in texts)
        from memgpt.plugins import get_registry

        embedder = get_registry().embedder("sentence-transformers").factory(None)
        (best, *_), total = storage.search_passages("reader", embedder.embed(["where did we plant vegetables?"])[0])
        assert total == 2 and "tomatoes" in best.text
    finally:
        storage.close()


@pytest.mark.slow  # real MiniLM embeddings
def test_load_chunks_to_what_the_embedding_model_reads(tmp_path: Path) -> None:
    """The original's 300-token chunks are longer than MiniLM reads (254 wordpieces): every chunk must
    fit, so the end of each one is embedded too."""
    make_agent("reader")
    sentences = [f"Entry {i}: the heron at pond number {i} caught {i % 7 + 1} silver fish before sunrise." for i in range(200)]
    (tmp_path / "log.txt").write_text(" ".join(sentences))
    result = invoke("load", "--agent", "reader", str(tmp_path / "log.txt"))
    assert result.exit_code == 0, result.output
    from memgpt.plugins import get_registry

    embedder = get_registry().embedder("sentence-transformers").factory(None)
    storage = SQLiteStorage(home() / "memgpt.db")
    try:
        texts = [p.text for p in storage.iter_passages("reader")]
    finally:
        storage.close()
    counts = [embedder.count_tokens(t) for t in texts]
    assert len(texts) > 10 and max(counts) <= embedder.max_tokens
    assert max(counts) > embedder.max_tokens * 0.8  # chunks are filled, not cut needlessly small
    assert all(s in " ".join(texts) for s in sentences)  # nothing dropped between chunks


def test_load_into_a_missing_agent_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    result = invoke("load", "--agent", "ghost", str(tmp_path / "a.txt"))
    assert result.exit_code == 1 and "no agent named 'ghost'" in result.output


def test_run_with_a_window_too_small_for_any_conversation_fails_before_saving_anything() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memgpt", "run", "--agent", "small", "--context-window", "2048", "--message", "hi"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        timeout=120,
    )
    assert out.returncode == 1
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: context window 2048 is too small for this agent") and "lower --max-tokens" in error, (
        out.stderr
    )
    assert json.loads(invoke("list", "agents", "--json").output) == []
    # the fix the message names: a smaller reply reserve fits the same window (the session opens; /memory
    # needs no model turn, so what is checked is the window, not what a tiny model says in it)
    smaller = subprocess.run(
        [
            sys.executable,
            "-m",
            "memgpt",
            "run",
            "--agent",
            "small",
            "--context-window",
            "2048",
            "--max-tokens",
            "256",
            "--first",
            "--message",
            "/memory",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        timeout=300,
    )
    assert smaller.returncode == 0, smaller.stderr
    lines = [json.loads(line) for line in smaller.stdout.splitlines()]
    assert lines[0]["type"] == "session" and lines[0]["context_window"] == 2048
    assert any(line["type"] == "info" and "### Core memory" in line["text"] for line in lines)
    storage = SQLiteStorage(home() / "memgpt.db")
    try:
        saved = storage.get_agent("small").settings["model"]
    finally:
        storage.close()
    assert (saved["context_window"], saved["max_tokens"]) == (2048, 256)


@pytest.mark.parametrize(
    ("flag", "value", "kind"),
    [
        ("--model-wrapper", "no-such-wrapper", "wrapper"),
        ("--model-endpoint-type", "no-such-backend", "backend"),
        ("--persona", "nobody", "persona"),
    ],
)
def test_run_with_an_unknown_name_is_one_line_listing_the_choices(flag: str, value: str, kind: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "memgpt", "run", flag, value, "--message", "hi"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
        timeout=120,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"unknown {kind} {value!r}; choose one of:" in lines[0], out.stderr
    assert json.loads(invoke("list", "agents", "--json").output) == []  # nothing half-created


def test_add_refuses_to_replace_an_existing_persona_without_force() -> None:
    builtin = invoke("add", "persona", "--name", "sam_pov", "--text", "I am someone else.")
    assert builtin.exit_code == 2 and "a persona named 'sam_pov' already exists (built in); use --force" in builtin.output
    assert invoke("add", "persona", "--name", "pirate", "--text", "Arr.").exit_code == 0
    mine = invoke("add", "persona", "--name", "pirate", "--text", "Yo ho.")
    assert mine.exit_code == 2 and "already exists (yours)" in mine.output
    assert invoke("add", "persona", "--name", "pirate", "--text", "Yo ho.", "--force").exit_code == 0
    from memgpt import catalog

    assert catalog.read("personas", "pirate") == "Yo ho."
    assert invoke("add", "persona", "--name", "sam_pov", "--text", "Mine now.", "--force").exit_code == 0
    assert catalog.read("personas", "sam_pov") == "Mine now."


@pytest.mark.parametrize(
    ("text", "expected"),
    [("   \n", "the human text is empty"), ("x" * 2001, "2001 characters, over the core-memory block limit of 2000")],
)
def test_add_validates_the_text_against_the_block_limit(text: str, expected: str) -> None:
    result = invoke("add", "human", "--name", "someone", "--text", text)
    assert result.exit_code == 2 and expected in result.output
    assert "someone" not in {row["name"] for row in json.loads(invoke("list", "humans", "--json").output)}


def test_add_reads_a_latin1_file_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "renee.txt"
    path.write_bytes("Ren\xe9e lives in K\xf6ln.".encode("latin-1"))
    result = CliRunner().invoke(get_app(), ["add", "human", "--name", "renee", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "is not UTF-8 (byte 0xe9); read it as cp1252" in result.output
    from memgpt import catalog

    assert catalog.read("humans", "renee") == "Renée lives in Köln."


def test_agent_listing_piped_is_plain_rows_with_whole_names() -> None:
    long_name = "a_rather_long_agent_name_that_a_narrow_table_would_cut_" + "x" * 30
    make_agent("ann")
    make_agent(long_name)
    result = invoke("list", "agents")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split("\t")[0] == "name" and "─" not in result.output
    assert sorted(row.split("\t")[0] for row in rows) == sorted(["ann", long_name])


def test_agent_listing_in_a_narrow_terminal_never_cuts_the_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from memgpt.cli.tables import print_rows

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    long_name = "agent_20261202_010203_123456_with_a_long_tail"
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("COLUMNS", "60")
    print_rows(
        "agents",
        [{"name": long_name, "persona": "sam_pov", "backend": "llamacpp-embedded", "created_at": "2026-12-02T01:02:03+00:00"}],
    )
    assert any(long_name in line for line in screen.getvalue().splitlines()), screen.getvalue()


def test_list_agents_puts_the_most_recently_used_first() -> None:
    from datetime import UTC, datetime, timedelta

    storage = SQLiteStorage(home() / "memgpt.db")
    try:
        now = datetime.now(UTC)
        for i, name in enumerate(["old", "newest", "middle"]):
            storage.save_agent(
                AgentRecord(name=name, core_memory={"persona": "p", "human": "h"}, updated_at=now - timedelta(hours=[3, 1, 2][i]))
            )
    finally:
        storage.close()
    assert [row["name"] for row in json.loads(invoke("list", "agents", "--json").output)] == ["newest", "middle", "old"]


def test_show_agent_says_which_model_it_uses() -> None:
    make_agent("ann")
    result = invoke("show", "agent", "ann", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "ann" and data["model"]["backend"] == "llamacpp" and data["persona"] == "sam_pov"
    assert data["core_memory"] == {"persona": 1, "human": 1}
    text = invoke("show", "agent", "ann").output
    assert "backend=llamacpp" in text and "wrapper=chatml-grammar" in text
    missing = invoke("show", "agent", "ghost")
    assert missing.exit_code == 1 and "no agent named 'ghost'" in missing.output


def test_show_prints_a_persona_or_human_text() -> None:
    from memgpt import catalog

    result = invoke("show", "persona", "sam_pov")
    assert result.exit_code == 0 and result.output.strip() == catalog.read("personas", "sam_pov").strip()
    assert invoke("add", "human", "--name", "ann", "--text", "Ann likes tea.").exit_code == 0
    assert json.loads(invoke("show", "human", "ann", "--json").output) == {"name": "ann", "text": "Ann likes tea."}
    unknown = invoke("show", "robot", "x")
    assert unknown.exit_code == 2 and "choose one of: agent, persona, human, preset" in unknown.output


def test_a_persona_file_that_is_not_utf8_is_a_one_line_error() -> None:
    (home() / "personas").mkdir()
    (home() / "personas" / "renee.txt").write_bytes("Ren\xe9e".encode("latin-1"))
    result = invoke("show", "persona", "renee")
    assert result.exit_code == 1
    assert "renee.txt is not UTF-8 text (byte 0xe9 at offset 3)" in str(result.exception) and "--force" in str(result.exception)
