"""Where the MemGPT home is (``MEMGPT_HOME`` or ``~/.memgpt``). Its own module so that commands which need
only the home (``memgpt list agents``) do not import the config's pydantic models; ``memgpt.config`` re-exports
``home``."""

from __future__ import annotations

import os
from pathlib import Path

from memgpt.errors import ConfigError


def home() -> Path:
    """The MemGPT home directory (``MEMGPT_HOME`` or ``~/.memgpt``), created user-only."""
    path = Path(os.environ.get("MEMGPT_HOME") or Path.home() / ".memgpt").expanduser()
    if not path.exists():
        try:
            path.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the memgpt home {path} ({exc.strerror}); set MEMGPT_HOME to a writable folder"
            ) from None
    elif not path.is_dir():
        raise ConfigError(f"the memgpt home {path} is not a folder; set MEMGPT_HOME to a folder")
    return path
