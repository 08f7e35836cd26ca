"""A minimal expect: run a program on a pseudo-terminal, wait for text, type lines (stdlib only).

pymemgpt 0.3.25 reads every message through questionary / prompt_toolkit, which needs a terminal; the
workspace venv has no pexpect, and this is all the driver needs.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Sequence

# prompt_toolkit asks the terminal where the cursor is (ESC[6n) and waits for an answer; we answer at once.
_CPR_QUERY = b"\x1b[6n"
_CPR_ANSWER = b"\x1b[1;1R"
# prompt_toolkit turns bracketed paste off when a prompt accepts its input: the one unambiguous sign that
# a typed line was taken (its redraws repeat the prompt text). Kept in ``log`` as this marker.
ACCEPTED = "<<input accepted>>"
_PASTE_OFF = b"\x1b[?2004l"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]|\r")


def plain(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text)


class Timeout(Exception):
    """Nothing matched before the deadline."""


class Exited(Exception):
    """The program ended before anything matched."""


class PtySession:
    """A child process whose stdin/stdout/stderr are one pseudo-terminal; output accumulates in ``log``."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str | None = None, cols: int = 200) -> None:
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
        self.proc = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.fd = master
        self.log = ""  # everything the program printed, escape sequences removed
        self._seen = 0  # how much of ``log`` earlier expects consumed

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            return False
        if _CPR_QUERY in chunk:
            os.write(self.fd, _CPR_ANSWER)
        chunk = chunk.replace(_PASTE_OFF, f"\n{ACCEPTED}\n".encode())
        self.log += plain(chunk.decode("utf-8", errors="replace"))
        return True

    def expect(self, patterns: Sequence[str], timeout: float) -> tuple[int, re.Match[str]]:
        """Wait until one of ``patterns`` (regexes) appears in output not yet consumed; return its index and match."""
        compiled = [re.compile(p) for p in patterns]
        deadline = time.monotonic() + timeout
        while True:
            window = self.log[self._seen :]
            hits = [(m.start(), i, m) for i, c in enumerate(compiled) if (m := c.search(window))]
            if hits:
                _, index, match = min(hits, key=lambda h: h[0])
                self._seen += match.end()
                return index, match
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"none of {list(patterns)} within {timeout:.0f}s; last output: {window[-400:]!r}")
            if not self._read(min(left, 0.5)) and self.proc.poll() is not None:
                raise Exited(f"exited with {self.proc.returncode} waiting for {list(patterns)}; last output: {window[-800:]!r}")

    def unread(self) -> str:
        return self.log[self._seen :]

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def sendline(self, text: str) -> None:
        self.send(text + "\r")

    def interrupt(self) -> None:
        os.write(self.fd, b"\x03")

    def close(self, timeout: float = 10) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.fd)
        return self.proc.returncode
