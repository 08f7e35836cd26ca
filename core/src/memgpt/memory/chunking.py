"""Text into archival-memory passages, and the files ``memgpt load`` may read.

Chunking follows the original MemGPT (about 300 tokens a chunk, 200 tokens of overlap) but cuts at
paragraph and sentence boundaries, falling back to words and then characters only for a sentence that
alone is too long. Token counts are an estimate (words and punctuation, long words as several tokens)
unless the caller passes a real tokenizer's ``count_tokens``. Text headed for an embedder is chunked
with ``chunking_for(embedder)``: never longer than the embedding model reads (all-MiniLM-L6-v2 reads 254
wordpieces of text, fewer than the original's 300-token chunks, whose tails it silently dropped).

File collection is conservative: only regular files under the paths the user named, never through a
symlink that leads outside them, never a device or FIFO (opening one would block), never a binary. A
directory gives its text and markdown files, or the files matching the caller's globs; what it leaves out
for its name is reported, not dropped in silence. Text is read as UTF-8, UTF-16 or UTF-32 when a byte-order
mark (or, for UTF-16, the pattern of zero bytes) says so, else as UTF-8, else as Windows-1252 / Latin-1
(``decode``): the encodings text files on a laptop are in.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from memgpt.errors import LoadError

CHUNK_TOKENS = 300
OVERLAP_TOKENS = 200
TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".mdown", ".mkd", ".rst", ".org", ".adoc"})
MAX_FILE_BYTES = 50 * 1024 * 1024
_SNIFF_BYTES = 8192

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_PARAGRAPH = re.compile(r"\n[ \t]*\n+")
# A sentence ends at . ! ? … (maybe followed by a closing quote or bracket) before whitespace; a line
# that starts a markdown list item, heading or quote starts a new unit too.
_SENTENCE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+|\n(?=[ \t]*(?:[-*+>#]|\d+[.)])\s)")

Unit = tuple[str, int, str]  # text, tokens, separator before it ("\n\n" opens a paragraph)


def chunking_for(embedder: Any) -> dict[str, Any]:
    """``chunk_text`` arguments for text that ``embedder`` will embed: chunks no longer than it reads
    (its ``max_tokens``, counted with its ``count_tokens``) and the same overlap ratio, so no chunk has
    an unread tail. An embedder that declares neither gets the defaults and the estimate."""
    limit = getattr(embedder, "max_tokens", None)
    count = getattr(embedder, "count_tokens", None)
    if not (isinstance(limit, int) and limit > 0 and callable(count)):
        return {"max_tokens": CHUNK_TOKENS, "overlap_tokens": OVERLAP_TOKENS, "count_tokens": approx_tokens}
    size = min(CHUNK_TOKENS, limit)
    return {"max_tokens": size, "overlap_tokens": size * OVERLAP_TOKENS // CHUNK_TOKENS, "count_tokens": count}


def approx_tokens(text: str) -> int:
    """A cheap token estimate close to BPE/WordPiece counts on prose: a word of n characters counts
    ``ceil(n / 6)`` (long or rare words split into several tokens), each punctuation mark one."""
    return sum(-(-len(piece) // 6) for piece in _PIECE.findall(text))


def chunk_text(
    text: str,
    *,
    max_tokens: int = CHUNK_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens``; consecutive chunks share up to
    ``overlap_tokens`` of whole sentences. Empty or blank text gives no chunks."""
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens, got {max_tokens}, {overlap_tokens}")
    units = _units(text, max_tokens, count_tokens)
    chunks: list[str] = []
    current: list[Unit] = []
    size = 0
    fresh = 0  # units in ``current`` that no earlier chunk holds
    for i, unit in enumerate(units):
        _, tokens, sep = unit
        full = size + tokens > max_tokens
        # At a paragraph boundary, close a chunk that is at least half full rather than cut the next
        # paragraph in two, when that paragraph would not fit anyway.
        if not full and sep == "\n\n" and fresh and size >= max_tokens // 2:
            full = size + _paragraph_tokens(units, i) > max_tokens
        if full and fresh:
            chunks.append(_join(current))
            current, size = _overlap(current, overlap_tokens, max_tokens - tokens)
            fresh = 0
        current.append(unit)
        size += tokens
        fresh += 1
    if fresh:
        chunks.append(_join(current))
    return chunks


def _units(text: str, max_tokens: int, count: Callable[[str], int]) -> list[Unit]:
    units: list[Unit] = []
    for paragraph in _PARAGRAPH.split(text.replace("\r\n", "\n")):
        sep = "\n\n"
        start = 0
        for end, next_sep in [*((m.start(), m.group()) for m in _SENTENCE.finditer(paragraph)), (len(paragraph), "")]:
            sentence = paragraph[start:end].strip()
            if sentence:
                for piece in _fit(sentence, max_tokens, count):
                    units.append((piece, count(piece), sep))
                    sep = " "
                sep = "\n" if "\n" in next_sep else " "
            start = end + len(next_sep)
    return units


def _fit(sentence: str, max_tokens: int, count: Callable[[str], int]) -> Iterable[str]:
    """The sentence itself, or pieces of it (words, then characters) that each fit ``max_tokens``."""
    if count(sentence) <= max_tokens:
        yield sentence
        return
    piece = ""
    for word in sentence.split():
        candidate = f"{piece} {word}" if piece else word
        if count(candidate) <= max_tokens:
            piece = candidate
            continue
        if piece:
            yield piece
        while count(word) > max_tokens:  # one "word" longer than a chunk (a URL, base64, no spaces)
            cut = _longest_prefix(word, max_tokens, count)
            yield word[:cut]
            word = word[cut:]
        piece = word
    if piece:
        yield piece


def _longest_prefix(word: str, max_tokens: int, count: Callable[[str], int]) -> int:
    low, high = 1, len(word)  # count(word[:1]) fits for any sane counter
    while low < high:
        mid = (low + high + 1) // 2
        if count(word[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return low


def _paragraph_tokens(units: Sequence[Unit], start: int) -> int:
    total = units[start][1]
    for _, tokens, sep in units[start + 1 :]:
        if sep == "\n\n":
            break
        total += tokens
    return total


def _overlap(units: list[Unit], budget: int, room: int) -> tuple[list[Unit], int]:
    """The trailing whole units of the chunk just closed that fit the overlap budget and leave room."""
    kept: list[Unit] = []
    size = 0
    for unit in reversed(units):
        if size + unit[1] > min(budget, room):
            break
        kept.insert(0, unit)
        size += unit[1]
    return kept, size


def _join(units: Sequence[Unit]) -> str:
    return units[0][0] + "".join(sep + text for text, _, sep in units[1:])


# ---------------------------------------------------------------------------------------------- files


def collect_files(
    paths: Iterable[Path | str],
    *,
    suffixes: frozenset[str] | None = TEXT_SUFFIXES,
    globs: Sequence[str] = (),
    skipped: list[tuple[Path, str]] | None = None,
    unmatched: list[Path] | None = None,
) -> list[Path]:
    """The text files to load from ``paths``: a named file is taken whatever its suffix; a directory is
    walked for files with one of ``suffixes`` (None = any), or, when ``globs`` are given, for files whose
    name or path below the directory matches one of them; hidden entries are skipped. Files left out for
    their name are appended to ``unmatched``. Symlinks are followed only when they stay inside the
    directory named. Binaries, devices and files over ``MAX_FILE_BYTES`` are left out and, with the
    reason, appended to ``skipped``.

    Raises ``LoadError`` if a named path does not exist or cannot be read."""
    found: dict[Path, None] = {}
    skip = skipped if skipped is not None else []
    other = unmatched if unmatched is not None else []
    for given in paths:
        path = Path(given).expanduser()
        if not os.path.lexists(path):
            raise LoadError(f"{path} does not exist; give existing text or markdown files or directories")
        try:
            if path.is_dir():
                for file in _walk(path, suffixes, globs, skip, other):
                    found.setdefault(file)
            elif _acceptable(path.resolve(), skip):
                found.setdefault(path.resolve())
        except PermissionError as exc:
            raise LoadError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc
    return list(found)


def _wanted(path: Path, base: Path, suffixes: frozenset[str] | None, globs: Sequence[str]) -> bool:
    if globs:
        below = path.relative_to(base).as_posix()
        return any(fnmatch.fnmatch(path.name, g) or fnmatch.fnmatch(below, g) for g in globs)
    return suffixes is None or path.suffix.lower() in suffixes


def _walk(
    root: Path,
    suffixes: frozenset[str] | None,
    globs: Sequence[str],
    skipped: list[tuple[Path, str]],
    unmatched: list[Path],
) -> Iterable[Path]:
    base = root.resolve()

    def error(exc: OSError) -> None:
        skipped.append((Path(exc.filename or root), f"cannot read: {exc.strerror}"))

    for folder, dirs, files in os.walk(base, onerror=error):  # never descends into symlinked directories
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder, name)
            if name.startswith("."):
                continue
            if not _wanted(path, base, suffixes, globs):
                unmatched.append(path)
                continue
            target = path.resolve()
            if not target.is_relative_to(base):
                skipped.append((path, f"symlink to {target}, outside {root}"))
                continue
            if _acceptable(target, skipped):
                yield target


def _acceptable(path: Path, skipped: list[tuple[Path, str]]) -> bool:
    try:
        info = os.stat(path)
    except OSError as exc:
        skipped.append((path, f"cannot read: {exc.strerror}"))
        return False
    if not stat.S_ISREG(info.st_mode):
        skipped.append((path, "not a regular file"))
        return False
    if info.st_size > MAX_FILE_BYTES:
        skipped.append((path, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"))
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        skipped.append((path, f"cannot read: {exc.strerror}"))
        return False
    if detect_encoding(head, partial=True) is None:
        skipped.append((path, "binary"))
        return False
    return True


_BOMS = (  # UTF-32 LE's mark begins with UTF-16 LE's: the longer marks first
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Controls that text holds (tab, newlines, form feed, escape); any other C0/C1 control beyond
#: ``_MAX_CONTROLS`` of the characters marks a binary.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_CONTROLS = 0.01


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when the zero bytes fall as in mostly-ASCII UTF-16 text (every other byte)."""
    sample = data[: 4096 - 4096 % 2]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even = sample[0::2].count(0) / pairs
    odd = sample[1::2].count(0) / pairs
    if odd > 0.3 and even < 0.02:
        return "utf-16-le"
    if even > 0.3 and odd < 0.02:
        return "utf-16-be"
    return None


def detect_encoding(data: bytes, *, partial: bool = False) -> str | None:
    """The encoding ``data`` is text in, or None when it looks binary: a byte-order mark's; UTF-16 by its
    zero bytes; else UTF-8 if it decodes, else Windows-1252, else Latin-1 (which decodes anything). A
    byte-order mark is dropped when decoding with the name returned for it. ``partial``: ``data`` is the
    head of a longer file (it may end inside a character)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is None and b"\x00" in data:
        encoding = _utf16_without_bom(data)
        if encoding is None:
            return None
    if encoding is None:
        for candidate in ("utf-8", "cp1252", "latin-1"):
            try:
                codecs.getincrementaldecoder(candidate)().decode(data, final=not partial)
            except UnicodeDecodeError:
                continue
            encoding = candidate
            break
    assert encoding is not None  # latin-1 decodes any bytes
    try:
        text = _decode(data, encoding, final=not partial)
    except UnicodeDecodeError:
        return None  # a byte-order mark, or zero bytes, on what is not that encoding
    controls = sum(1 for ch in text if (ch < " " or "\x7f" <= ch < "\xa0") and ch not in _TEXT_CONTROLS)
    return None if text and controls > _MAX_CONTROLS * len(text) else encoding


def _decode(data: bytes, encoding: str, *, final: bool = True) -> str:
    bom = next((mark for mark, name in _BOMS if name == encoding and data.startswith(mark)), b"")
    return codecs.getincrementaldecoder(encoding)().decode(data[len(bom) :], final=final)


def decode(data: bytes) -> tuple[str, str]:
    """``data`` as text and the encoding it was read in (``detect_encoding``); a file that looks binary is
    read as UTF-8 with its bad bytes replaced (the caller named it: it is loaded, not refused)."""
    encoding = detect_encoding(data)
    if encoding is None:
        return data.decode("utf-8", errors="replace"), "utf-8 (with replacements)"
    return _decode(data, encoding), encoding


def read_text(path: Path) -> str:
    """A collected file's text (``read_file``)."""
    return read_file(path)[0]


def read_file(path: Path) -> tuple[str, str]:
    """A collected file's text and the encoding it was read in (``decode``: a byte-order mark dropped).

    Opened without following a final symlink, and without blocking if it has become a FIFO since it was
    collected."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise LoadError(f"cannot read {path} ({exc.strerror}); check that it exists and is readable") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise LoadError(f"{path} is not a regular file; load text or markdown files only")
        data = handle.read(MAX_FILE_BYTES + 1)
    return decode(data)
