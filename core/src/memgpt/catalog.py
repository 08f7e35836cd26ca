"""Personas, humans and presets: text files shipped with memgpt plus the user's own under the home dir.

A user's file with the same name as a shipped one wins. ``memgpt add persona|human`` writes to
``$MEMGPT_HOME/personas`` / ``humans``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

from memgpt.config import home, write_atomic
from memgpt.errors import ConfigError, UnknownNameError

Kind = Literal["personas", "humans", "presets"]
SUFFIX: dict[str, str] = {"personas": ".txt", "humans": ".txt", "presets": ".toml"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _shipped(kind: Kind) -> dict[str, str]:
    root = resources.files("memgpt") / "data" / kind
    found: dict[str, str] = {}
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.endswith(SUFFIX[kind]):
                found[entry.name[: -len(SUFFIX[kind])]] = entry.read_text(encoding="utf-8")
    return found


def _user_dir(kind: Kind) -> Path:
    return home() / kind


def _user(kind: Kind) -> dict[str, Path]:
    folder = _user_dir(kind)
    if not folder.is_dir():
        return {}
    return {p.name[: -len(SUFFIX[kind])]: p for p in folder.iterdir() if p.name.endswith(SUFFIX[kind])}


def names(kind: Kind) -> list[str]:
    return sorted(set(_shipped(kind)) | set(_user(kind)))


def read(kind: Kind, name: str) -> str:
    user = _user(kind)
    if name in user:
        path = user[name]
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8, "
                f"or replace it with `memgpt add {kind.rstrip('s')} --name {name} --force --file FILE`"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path} ({exc.strerror})") from None
    shipped = _shipped(kind)
    if name in shipped:
        return shipped[name]
    raise UnknownNameError(kind.rstrip("s"), name, names(kind))


def add(kind: Kind, name: str, text: str, *, replace: bool = False) -> Path:
    """Save a user's persona / human / preset; the name must be a plain file name. A persona or human must
    fit a core-memory block, and an existing name (the user's or a shipped one) is only replaced when
    ``replace`` is true."""
    from memgpt.memory.core import DEFAULT_LIMIT

    if not _NAME.match(name):
        raise ValueError(f"invalid name {name!r}: use letters, digits, '_', '-' or '.' (max 64)")
    what = kind.rstrip("s")
    if kind in ("personas", "humans"):
        size = len(text.strip())
        if size == 0:
            raise ValueError(f"the {what} text is empty; give the description with --text or --file")
        if size > DEFAULT_LIMIT:
            raise ValueError(
                f"the {what} text is {size} characters, over the core-memory block limit of {DEFAULT_LIMIT}; shorten it"
            )
    if not replace and name in set(_user(kind)) | set(_shipped(kind)):
        where = "yours" if name in _user(kind) else "built in"
        raise ValueError(f"a {what} named {name!r} already exists ({where}); use --force to replace it, or another name")
    path = _user_dir(kind) / f"{name}{SUFFIX[kind]}"
    write_atomic(path, text, mode=0o600)
    return path
