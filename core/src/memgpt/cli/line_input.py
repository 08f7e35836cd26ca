"""What the user types in ``memgpt run``: a line-editing prompt in a terminal, plain lines otherwise.

In a terminal the prompt is prompt_toolkit's: arrow keys move and recall history (kept in
``$MEMGPT_HOME/history``) instead of inserting escape codes. A line waits only until a deadline (the
agent's next timed heartbeat); what was half typed then comes back in the next prompt. Whatever the source,
``clean_line`` drops terminal escape sequences and control characters, so ``\\x1b[A/memory`` is the
command ``/memory``, never a chat message, and turns bytes that were not UTF-8 into U+FFFD.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

#: CSI (``ESC [ … final``), SS3 (``ESC O x``) and two-character escapes, then the other C0 controls and DEL
#: (a tab stays).
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|O.?|[@-_]?)|[\x00-\x08\x0b-\x1f\x7f]")


#: Lone surrogates: how a terminal reader hands over bytes that are not UTF-8 (``surrogateescape``).
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_line(line: str) -> str:
    """``line`` without terminal escape sequences and control characters, and with U+FFFD for bytes that
    were not UTF-8 (a lone surrogate cannot be stored or printed)."""
    return _SURROGATES.sub("\ufffd", _ESCAPES.sub("", line))


def enable_line_editing() -> None:
    """Give ``input()`` (the questions of ``configure`` and the agent picker) line editing, where Python has
    readline: arrow keys move instead of inserting escape codes."""
    try:
        import readline  # noqa: F401 (importing it is what hooks it into input())
    except ImportError:
        pass


def _history(path: Path) -> Any:
    """The prompt's history in ``path``, created 0600 (it holds what the user said)."""
    from prompt_toolkit.history import FileHistory

    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    except OSError:
        pass  # an unwritable home: the session runs without saved history

    class SafeHistory(FileHistory):
        """History that never ends a session: an unwritable home only means no history."""

        def load_history_strings(self):  # type: ignore[no-untyped-def]
            try:
                yield from super().load_history_strings()
            except (OSError, UnicodeDecodeError):
                return

        def store_string(self, string: str) -> None:
            try:
                super().store_string(clean_line(string))
            except OSError:
                pass

    return SafeHistory(str(path))


class TerminalInput:
    """prompt_toolkit's line editor with history and an optional deadline."""

    def __init__(self, history_path: Path, prompt: str = "you: ") -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.formatted_text import HTML

        self.session: Any = PromptSession(history=_history(history_path))
        self.message = HTML(f"<ansigreen><b>{prompt.rstrip(': ')}</b></ansigreen>: ")
        self._draft = ""

    def readline(self, deadline: float | None) -> str | None:
        """The next line; None when ``deadline`` (``time.time()``) passes first. Ctrl-D raises EOFError and
        Ctrl-C KeyboardInterrupt, as ``input()`` does."""
        draft, self._draft = self._draft, ""
        if deadline is None:
            return clean_line(self.session.prompt(self.message, default=draft))
        import asyncio

        app = self.session.app
        expired = False

        def expire() -> None:
            # The half-typed line leaves the screen (the agent's turn prints where it was) and comes back,
            # as typed, in the next prompt.
            nonlocal expired
            if app.is_running and not app.future.done():
                expired = True
                self._draft = self.session.default_buffer.text
                app.erase_when_done = True
                app.exit(result="")

        async def ask() -> str:
            timer = asyncio.get_running_loop().call_later(max(0.0, deadline - time.time()), expire)
            try:
                line: str = await self.session.prompt_async(self.message, default=draft)
                return line
            finally:
                timer.cancel()

        try:
            line = asyncio.run(ask())
        finally:
            app.erase_when_done = False
        return None if expired else clean_line(line)
