"""The plugins' commands as ``memgpt --help`` lists them, remembered so that listing them imports no plugin.

``memgpt --help`` names every command, the plugins' too, yet runs none: importing every plugin (and the
entry-point metadata machinery that finds them) only for their names and one-line help would cost several
times the rest of the start-up. A process that has loaded the plugins writes what they registered to
``$XDG_CACHE_HOME/memgpt/plugin-commands.json`` (``~/.cache`` by default); the next ``memgpt --help`` lists
those instead, when nothing they came from can have changed:

- the interpreter, memgpt's version, ``sys.path`` and the plugin selection (``MEMGPT_LOAD_PLUGINS``,
  ``MEMGPT_DISABLE_PLUGINS``) are the same;
- no directory on ``sys.path`` has changed (installing, upgrading or removing any distribution adds or
  removes its ``.dist-info`` folder in one of them, which changes that folder's modification time);
- no source file of a loaded plugin module, nor of the module a command's function lives in, has changed
  (an editable install's help text is edited there).

It is written only from a load in which no plugin failed (a plugin that failed to import may be fixed by an
edit nothing above notices) and is used for nothing but the listing: any command that runs loads the plugins.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memgpt import __version__

if TYPE_CHECKING:
    from memgpt.plugins import Registry

FORMAT = 1


def path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "memgpt" / "plugin-commands.json"


def _stamp(name: str) -> list[int] | None:
    try:
        stat = os.stat(name or ".")
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size, stat.st_ino]


def _key() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "memgpt": __version__,
        "python": [sys.executable, sys.version],
        "plugins": [os.environ.get("MEMGPT_LOAD_PLUGINS"), os.environ.get("MEMGPT_DISABLE_PLUGINS")],
        "sys.path": [[entry, _stamp(entry)] for entry in sys.path],
    }


def _source(module_name: str | None) -> str | None:
    module = sys.modules.get(module_name or "")
    file = getattr(module, "__file__", None)
    return os.path.abspath(file) if isinstance(file, str) else None


def listed(registry: Registry) -> list[dict[str, Any]]:
    """``registry``'s commands as ``--help`` lists them: name and the help typer shows (the spec's, else the
    function's docstring)."""
    return [
        {"name": name, "help": spec.help or inspect.getdoc(spec.callback), "plugin": spec.plugin}
        for name, spec in registry.commands.items()
    ]


def save(registry: Registry, commands: list[dict[str, Any]]) -> None:
    """Remember ``commands`` (those ``registry``'s plugins registered and the CLI accepted); never raises."""
    if registry.failures:
        return
    sources = {_source(info.module) for info in registry.plugins}
    sources |= {_source(getattr(spec.callback, "__module__", None)) for spec in registry.commands.values()}
    if None in sources:
        return  # something without a source file: nothing to check it by
    files = [[file, _stamp(file)] for file in sorted(s for s in sources if s is not None)]
    target = path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".plugin-commands.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": _key(), "files": files, "commands": commands}, handle)
        os.replace(tmp, target)
    except OSError:
        return  # a read-only cache only costs the next --help its speed


def load() -> list[dict[str, Any]] | None:
    """The remembered commands, or ``None`` when there are none or anything they came from has changed."""
    try:
        with open(path(), encoding="utf-8") as handle:
            data = json.load(handle)
        if data["key"] != _key() or any(_stamp(file) != stamp for file, stamp in data["files"]):
            return None
        commands = data["commands"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    well_formed = isinstance(commands, list) and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("help"), str | None) for c in commands
    )
    return commands if well_formed else None
