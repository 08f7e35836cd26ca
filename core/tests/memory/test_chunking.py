"""Chunking text for archival memory, and collecting the files `memgpt load` may read."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt.errors import LoadError
from memgpt.memory.chunking import (
    CHUNK_TOKENS,
    OVERLAP_TOKENS,
    approx_tokens,
    chunk_text,
    chunking_for,
    collect_files,
    detect_encoding,
    read_file,
    read_text,
)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def sentence(i: int, length: int = 12) -> str:
    return f"Sentence {i} " + " ".join(f"word{i}x{j}" for j in range(length)) + "."


def test_short_text_is_one_chunk_and_blank_is_none() -> None:
    assert chunk_text("Just one short note.") == ["Just one short note."]
    assert chunk_text("") == [] and chunk_text(" \n\n\t ") == []


def test_chunks_respect_the_budget_and_cut_between_sentences() -> None:
    text = " ".join(sentence(i) for i in range(60))
    chunks = chunk_text(text, max_tokens=100, overlap_tokens=30)
    assert len(chunks) > 5
    assert all(approx_tokens(c) <= 100 for c in chunks)
    assert all(c.startswith("Sentence ") and c.endswith(".") for c in chunks)  # whole sentences only


def test_overlap_repeats_trailing_sentences_and_nothing_is_lost() -> None:
    text = " ".join(sentence(i) for i in range(40))
    chunks = chunk_text(text, max_tokens=100, overlap_tokens=40)
    for before, after in itertools.pairwise(chunks):
        first_of_next = after.split(". ")[0] + "."
        assert first_of_next in before  # the next chunk opens with the end of this one
    seen = {w for c in chunks for w in words(c)}
    assert seen == set(words(text))
    no_overlap = chunk_text(text, max_tokens=100, overlap_tokens=0)
    assert sum(len(words(c)) for c in no_overlap) == len(words(text))  # exactly a partition
    assert len(no_overlap) < len(chunks)


def test_paragraph_boundaries_are_preferred() -> None:
    # sentences of 20 tokens; paragraphs of 60, 60, 20, 20, 60 tokens; chunks of 100
    paragraphs = [" ".join(sentence(p * 10 + i, 8) for i in range(n)) for p, n in enumerate([3, 3, 1, 1, 3])]
    chunks = chunk_text("\n\n".join(paragraphs), max_tokens=100, overlap_tokens=0)
    # greedy packing would have cut the second paragraph after two sentences
    assert chunks == [paragraphs[0], "\n\n".join(paragraphs[1:4]), paragraphs[4]]


def test_an_overlong_sentence_is_split_by_words_then_characters() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_text(long_sentence, max_tokens=50, overlap_tokens=0)
    assert all(approx_tokens(c) <= 50 for c in chunks)
    assert " ".join(chunks).split() == long_sentence.split()
    blob = "A" * 3000  # no spaces at all
    pieces = chunk_text(blob, max_tokens=20, overlap_tokens=0)
    assert "".join(pieces) == blob and all(approx_tokens(p) <= 20 for p in pieces)


def test_markdown_lists_and_headings_split_cleanly() -> None:
    text = "# Groceries\n- apples\n- pears\n\n## Notes\n1. call mom\n2. pay rent"
    assert chunk_text(text) == [text]  # line structure kept
    assert chunk_text(text, max_tokens=4, overlap_tokens=0) == [
        "# Groceries",
        "- apples\n- pears",
        "## Notes",
        "1. call mom",
        "2. pay rent",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = 'She said "stop." Then (quietly.) he left!'
    assert chunk_text(text, max_tokens=6, overlap_tokens=0) == ['She said "stop."', "Then (quietly.)", "he left!"]


def test_a_real_tokenizer_can_count() -> None:
    chunks = chunk_text(
        "one two three four five six. seven eight nine ten.",
        max_tokens=6,
        overlap_tokens=0,
        count_tokens=lambda t: len(t.split()),
    )
    assert chunks == ["one two three four five six.", "seven eight nine ten."]


def test_defaults_are_memgpts() -> None:
    text = " ".join(sentence(i) for i in range(200))
    assert all(approx_tokens(c) <= CHUNK_TOKENS == 300 for c in chunk_text(text))


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_tokens=10, overlap_tokens=10)


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=600), size=st.integers(5, 60))
def test_any_text_chunks_within_budget_and_keeps_every_word(text: str, size: int) -> None:
    chunks = chunk_text(text, max_tokens=size, overlap_tokens=size // 3)
    assert all(0 < approx_tokens(c) <= size for c in chunks)
    assert bool(chunks) == bool(text.strip())
    # a word longer than a chunk is cut across chunks, so compare with whitespace removed
    joined = "".join("".join(c.split()) for c in chunks)
    assert all(word in joined for word in words(text))


# ---------------------------------------------------------------------------------------------- files


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# A\nmarkdown")
    (root / "sub" / "b.txt").write_text("plain text")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / "fake.txt").write_bytes(b"looks like text\x00but is binary")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait ".encode("latin-1") * 10)
    (root / "code.py").write_text("print('not loaded from a directory')")
    (root / ".hidden.md").write_text("hidden")
    (root / ".git").mkdir()
    (root / ".git" / "notes.md").write_text("inside .git")
    return root


def test_directories_yield_text_and_markdown_only(tree: Path) -> None:
    skipped: list[tuple[Path, str]] = []
    files = collect_files([tree], skipped=skipped)
    assert sorted(p.relative_to(tree.resolve()).as_posix() for p in files) == ["a.md", "latin1.txt", "sub/b.txt"]
    reasons = {p.name: why for p, why in skipped}
    assert reasons == {"fake.txt": "binary"}


def test_files_left_out_for_their_name_are_reported_and_globs_take_them(tree: Path) -> None:
    unmatched: list[Path] = []
    collect_files([tree], unmatched=unmatched)
    assert sorted(p.name for p in unmatched) == ["code.py", "image.png"]  # hidden entries are not reported
    skipped: list[tuple[Path, str]] = []
    files = collect_files([tree], globs=["*.py", "sub/*"], skipped=skipped)
    assert sorted(p.name for p in files) == ["b.txt", "code.py"]


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8"),
        ("utf-16", "utf-16-le"),
        ("utf-16-le", "utf-16-le"),
        ("utf-16-be", "utf-16-be"),
        ("utf-32", "utf-32-le"),
        ("cp1252", "cp1252"),
    ],
)
def test_text_is_read_in_the_encoding_it_is_in(tmp_path: Path, encoding: str, expected: str) -> None:
    text = "Renée from Köln says “hello” to Zoë. " * 40
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode(encoding))
    assert collect_files([path]) == [path.resolve()]
    assert read_file(path) == (text, expected)


def test_latin1_with_bytes_windows_1252_lacks_is_latin1_and_binaries_are_none() -> None:
    assert detect_encoding(("caf\xe9 " * 50 + "\x81").encode("latin-1")) == "latin-1"
    assert detect_encoding(b"\x89PNG\r\n\x1a\n\x00\x00") is None
    assert detect_encoding(bytes(range(256)) * 8) is None
    assert detect_encoding("é".encode() * 10 + "é".encode()[:1], partial=True) == "utf-8"  # cut inside a character


def test_a_named_file_is_taken_whatever_its_suffix(tree: Path) -> None:
    assert collect_files([tree / "code.py"]) == [(tree / "code.py").resolve()]
    skipped: list[tuple[Path, str]] = []
    assert collect_files([tree / "image.png"], skipped=skipped) == []
    assert skipped[0][1] == "binary"


def test_symlinks_may_not_escape_the_directory(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    os.symlink(secret, tree / "escape.txt")
    os.symlink(tree / "a.md", tree / "inside.md")  # stays inside: fine, and not loaded twice
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    (outside_dir / "x.md").write_text("x")
    os.symlink(outside_dir, tree / "linked-dir")
    skipped: list[tuple[Path, str]] = []
    files = collect_files([tree], skipped=skipped)
    assert secret.resolve() not in files and (outside_dir / "x.md").resolve() not in files
    assert files.count((tree / "a.md").resolve()) == 1
    assert any(p.name == "escape.txt" and "outside" in why for p, why in skipped)


def test_fifos_and_devices_are_never_opened(tree: Path) -> None:
    os.mkfifo(tree / "pipe.txt")  # opening it for reading would block forever
    skipped: list[tuple[Path, str]] = []
    assert (tree / "pipe.txt").resolve() not in collect_files([tree], skipped=skipped)
    assert ((tree / "pipe.txt").resolve(), "not a regular file") in skipped
    assert collect_files([Path("/dev/null")], skipped=skipped) == []
    with pytest.raises(LoadError, match="not a regular file"):
        read_text(tree / "pipe.txt")


def test_missing_path_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="does not exist"):
        collect_files([tmp_path / "nope.md"])


def test_a_file_gone_since_collection_is_a_load_error(tree: Path) -> None:
    [path] = collect_files([tree / "a.md"])
    path.unlink()
    with pytest.raises(LoadError, match="cannot read"):
        read_text(path)


def test_read_text_drops_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeffhéllo".encode())
    assert read_text(path) == "héllo"


class WordEmbedder:
    """Declares that it reads ``max_tokens`` words (counted by whitespace)."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_chunks_for_an_embedder_fit_what_it_reads() -> None:
    plan = chunking_for(WordEmbedder(60))
    assert plan["max_tokens"] == 60 and plan["overlap_tokens"] == 40
    text = " ".join(sentence(i) for i in range(40))
    chunks = chunk_text(text, **plan)
    assert len(chunks) > 5 and all(len(c.split()) <= 60 for c in chunks)
    # a model that reads more than the original's chunk size still gets the original's chunks
    assert chunking_for(WordEmbedder(512))["max_tokens"] == CHUNK_TOKENS


@pytest.mark.parametrize("embedder", [object(), WordEmbedder(0), type("Half", (), {"max_tokens": 100})()])
def test_an_embedder_that_declares_no_usable_limit_gets_the_defaults(embedder: object) -> None:
    assert chunking_for(embedder) == {"max_tokens": CHUNK_TOKENS, "overlap_tokens": OVERLAP_TOKENS, "count_tokens": approx_tokens}
