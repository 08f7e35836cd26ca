"""``memgpt load`` as a user runs it (subprocess, and a pseudo-terminal for progress and Ctrl-C), with the
``words`` test embedder so no model loads: text in the encodings laptops hold, other files reported and
taken with ``--glob``, content stored once however often it is loaded, and an interrupt that says what was
stored and is finished by running the same command again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memgpt.storage.sqlite import SQLiteStorage

LAUNCHER = Path(__file__).parent / "scripted_memgpt.py"


def memgpt(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MEMGPT_HOME": str(home), **env},
        timeout=180,
    )


def passages(home: Path, agent: str = "sam") -> list[str]:
    storage = SQLiteStorage(home / "memgpt.db")
    try:
        return [p.text for p in storage.iter_passages(agent)]
    finally:
        storage.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert memgpt(home, "configure", "--yes", "--backend", "scripted", "--embedding-provider", "words").returncode == 0
    made = memgpt(home, "run", "--agent", "sam", "--first", "--message", "/memory")
    assert made.returncode == 0, made.stderr
    return home


def story(n: int) -> str:
    """``n`` distinct sentences of eight words."""
    return " ".join(f"Sentence number {i} tells of Renée in Köln today." for i in range(n))


def test_latin1_and_utf16_text_is_read(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "latin1.txt").write_bytes("Renée lives in Köln and likes crème brûlée.".encode("latin-1"))
    (docs / "windows.txt").write_bytes("Smart “quotes” – and a dash, from Windows.".encode("cp1252"))
    (docs / "bom16.txt").write_bytes("\ufeffUTF-16 with a mark: Zürich.".encode("utf-16-le"))
    (docs / "be16.md").write_bytes("UTF-16 big-endian without a mark: Genève.".encode("utf-16-be"))
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    result = memgpt(home, "load", "--agent", "sam", str(docs))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(passages(home)) == sorted(
        [
            "Renée lives in Köln and likes crème brûlée.",
            "Smart “quotes” – and a dash, from Windows.",
            "UTF-16 with a mark: Zürich.",
            "UTF-16 big-endian without a mark: Genève.",
        ]
    )
    assert "binary.txt: binary" in result.stderr
    assert "as cp1252" in result.stderr


def test_other_files_are_reported_and_taken_with_glob(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "src").mkdir(parents=True)
    (docs / "notes.md").write_text("Plain notes.")
    (docs / "src" / "app.py").write_text("print('code is text too')")
    (docs / "data.json").write_text('{"key": "value"}')
    (docs / "page.html").write_text("<p>a page</p>")
    result = memgpt(home, "load", "--agent", "sam", str(docs))
    assert result.returncode == 0, result.stderr
    assert passages(home) == ["Plain notes."]
    note = next(line for line in result.stderr.splitlines() if line.startswith("left out"))
    assert "left out 3 files that are not text or markdown by name" in note
    assert ".py ×1" in note and ".json ×1" in note and ".html ×1" in note and "--glob '*." in note

    result = memgpt(home, "load", "--agent", "sam", str(docs), "--glob", "*.py", "--glob", "*.json")
    assert result.returncode == 0, result.stderr
    assert sorted(passages(home)) == sorted(["Plain notes.", "print('code is text too')", '{"key": "value"}'])
    assert "left out 2 files" in result.stderr  # notes.md and page.html match neither glob


def test_the_same_content_loaded_twice_is_stored_once(home: Path, tmp_path: Path) -> None:
    doc = tmp_path / "story.txt"
    doc.write_text(story(30))
    first = memgpt(home, "load", "--agent", "sam", str(doc))
    assert first.returncode == 0, first.stderr
    stored = passages(home)
    assert len(stored) > 3
    assert f"Loaded {len(stored)} passages from 1 of 1 files" in first.stdout

    copy = tmp_path / "copy.txt"
    copy.write_text(story(30))
    again = memgpt(home, "load", "--agent", "sam", str(doc), str(copy))
    assert again.returncode == 0, again.stderr
    assert passages(home) == stored
    assert f"Loaded 0 passages from 2 of 2 files into 'sam''s archival memory; {2 * len(stored)} already stored" in again.stdout


pexpect = pytest.importorskip("pexpect")


def _ctrl_c_interrupts() -> None:
    """In the child: Ctrl-C interrupts, even when the tests run where SIGINT is ignored (a shell's background
    job), which the child would inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(home: Path, *args: str, **env: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        [str(LAUNCHER), *args],
        env={**os.environ, "MEMGPT_HOME": str(home), "TERM": "xterm", "COLUMNS": "150", **env},
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
        preexec_fn=_ctrl_c_interrupts,
        dimensions=(40, 150),
    )


def test_progress_from_the_start_and_ctrl_c_says_what_was_stored(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"part{i}.txt").write_text(story(40).replace("Sentence", f"Part {i} sentence"))
    child = spawn(
        home, "load", "--agent", "sam", str(docs), "--batch", "2", MEMGPT_TEST_EMBED_LOAD="2", MEMGPT_TEST_EMBED_SLOW="0.4"
    )
    child.expect("loading the embedding model")  # shown while the model loads, before any chunk
    child.expect(r"passages · \d/3 files · [\d.]+ passages/s")  # files done, and the rate once passages are stored
    time.sleep(1)
    child.sendintr()
    child.expect(r"interrupted: stored (\d+) passages from (\d) of 3 files into 'sam''s archival memory before the interrupt")
    stored_then = int(child.match.group(1))
    child.expect("run the same command again")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert len(passages(home)) == stored_then > 0

    rest = memgpt(home, "load", "--agent", "sam", str(docs))
    assert rest.returncode == 0, rest.stderr
    assert f"{stored_then} already stored were skipped" in rest.stdout
    clean = tmp_path / "clean"
    assert memgpt(clean, "configure", "--yes", "--backend", "scripted", "--embedding-provider", "words").returncode == 0
    assert memgpt(clean, "run", "--agent", "sam", "--first", "--message", "/memory").returncode == 0
    assert memgpt(clean, "load", "--agent", "sam", str(docs)).returncode == 0
    assert sorted(passages(home)) == sorted(passages(clean))  # resumed = loaded in one go
