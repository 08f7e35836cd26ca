"""The chat loops of ``memgpt run``: interactive (rich) and scripted (JSON lines), and the slash commands.

An error from the backend or the model ends the turn, never the session: the user's message stays pending
(``/retry`` sends it again) and the agent stays at its last committed step.

With timed heartbeats on (``memgpt run --heartbeat-every``), the interactive loop waits for a line only
until the agent's next heartbeat is due, then gives the agent its turn and prompts again.

While a turn runs in a terminal, a spinner shows the time it has taken and what the agent is doing
(``Activity``); keys typed meanwhile are not echoed into it but kept for the next prompt.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from memgpt.agent.agent import AgentEvent, TurnResult
from memgpt.cli.line_input import clean_line
from memgpt.errors import MemGPTError


def _known_sum(values: Iterable[int | None]) -> int | None:
    """The sum, or None when any part is unknown (a backend that does not report it): unknown is not 0."""
    values = list(values)
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _usage(result: TurnResult) -> dict[str, int | None]:
    return {
        "prompt_tokens": sum(u.prompt_tokens for u in result.usage),
        "completion_tokens": sum(u.completion_tokens for u in result.usage),
        "cached_tokens": _known_sum(u.cached_tokens for u in result.usage),
        "evaluated_tokens": _known_sum(u.evaluated_tokens for u in result.usage),
    }


def _turn_timeout(session: Any) -> float | None:
    """Seconds a turn may wait on the backend: ``[model] turn_timeout`` / ``--turn-timeout``, else
    ``MEMGPT_TURN_TIMEOUT``; None = no turn deadline."""
    seconds = getattr(session.model, "turn_timeout", None)
    if seconds is None:
        try:
            seconds = float(os.environ.get("MEMGPT_TURN_TIMEOUT", "")) or None
        except ValueError:
            seconds = None
    return seconds if seconds is None or seconds > 0 else None


def _backend_problem(session: Any) -> str | None:
    """The one line to show when the backend's probe at open failed (a server that is down or silent)."""
    status = getattr(session.backend, "last_check", None)
    return status.detail or "the backend is not answering" if status is not None and not status.ok else None


class JsonView:
    """One JSON object per line on stdout: every event, then a ``turn`` summary (for scripts and tests)."""

    def _write(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def opened(self, session: Any) -> None:
        agent = session.agent
        self.turn_timeout = _turn_timeout(session)
        self._write(
            {
                "type": "session",
                "agent": agent.name,
                "created": session.created,
                "backend": session.model.backend,
                "wrapper": session.model.wrapper,
                "context_window": agent.context_window,
                "pending": agent.pending_message,
            }
        )

    def event(self, event: AgentEvent) -> None:
        self._write(event.to_json())

    def turn(self, result: TurnResult) -> None:
        self._write({"type": "turn", "steps": result.steps, **result.outcome(), "usage": _usage(result)})

    def error(self, message: str) -> None:
        self._write({"type": "error", "text": message})

    def info(self, message: str) -> None:
        self._write({"type": "info", "text": message})


#: A pending message is shown whole up to this many characters, else its beginning and its length.
SHOWN_CHARS = 200


def _abbreviated(text: str) -> str:
    """``text`` quoted as the terminal shows it; a long one cut, saying how long it is."""
    from rich.markup import escape

    if len(text) <= SHOWN_CHARS:
        return escape(repr(text))
    return escape(repr(text[:SHOWN_CHARS])) + f"… ({len(text)} characters in all)"


def _unreplied(agent: Any) -> str | None:
    """The last user message in the context window when nothing was said to the user after it (its chain
    stopped, or the process died, after a step that did not reply); None otherwise."""
    from memgpt.agent import events

    for message in reversed(agent.context_messages()):
        call = message.function_call
        if message.role == "assistant" and call is not None and call.name == "send_message":
            return None
        said = events.user_text(message.content) if message.role == "user" else None
        if said is not None:
            return said
    return None


#: How many of the last exchanges (a user message and the agent's replies) a resumed session shows.
RECENT_TURNS = 3
#: Each line of them is cut to this many characters.
RECENT_CHARS = 160
#: How many stored messages are read back to find them (heartbeats, calls and results come between).
RECENT_SCAN = 80


def _one_line(text: str, limit: int = RECENT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def recent_exchanges(storage: Any, agent: str, turns: int = RECENT_TURNS) -> list[tuple[str, str, Any]]:
    """The last ``turns`` exchanges of the conversation, oldest first: (``"you"`` or ``"agent"``, the text,
    when). Only what was said: user messages and ``send_message`` replies, as recall search indexes them."""
    from memgpt.storage._recall import searchable_text

    said = [
        ("you" if m.role == "user" else "agent", text, m.created_at)
        for m in storage.recent_messages(agent, RECENT_SCAN)
        if (text := searchable_text(m))
    ]
    starts = [i for i, (who, _, _) in enumerate(said) if who == "you"]
    return said[starts[-turns] :] if len(starts) >= turns else said[starts[0] :] if starts else said


class RichView:
    """Inner thoughts, calls, replies and alerts styled apart in the terminal."""

    STYLES: ClassVar[dict[str, str]] = {
        "thought": "italic dim",
        "call": "yellow",
        "assistant": "bold cyan",
        "result": "dim",
        "alert": "magenta",
        "error": "bold red",
    }
    LABELS: ClassVar[dict[str, str]] = {
        "thought": "💭",
        "call": "⚡",
        "assistant": "🤖",
        "result": "  ↳",
        "alert": "⚠",
        "error": "✗",
    }

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)

    def opened(self, session: Any) -> None:
        agent = session.agent
        self.turn_timeout = _turn_timeout(session)
        problem = _backend_problem(session)
        if problem:
            self.error(problem)
        what = "Created" if session.created else "Resumed"
        self.console.print(
            f"[bold]{what} agent {agent.name!r}[/] — {session.model.backend} / {session.model.wrapper}, "
            f"context {agent.context_window} tokens. /help lists commands.",
        )
        if not session.created:
            self.recent(session)
        unanswered = [_abbreviated(m) for m in agent.pending_messages]
        if len(unanswered) == 1:
            self.console.print(f"[magenta]Your last message was not answered:[/] {unanswered[0]} — /retry sends it again.")
        elif unanswered:
            shown = ", ".join(unanswered)
            self.console.print(
                f"[magenta]Your last {len(unanswered)} messages were not answered:[/] {shown} — /retry sends them again."
            )
        else:
            said = _unreplied(agent)
            if said is not None:
                self.console.print(f"[magenta]Your last message got no reply:[/] {_abbreviated(said)} — /retry sends it again.")

    def recent(self, session: Any) -> None:
        """The last exchanges of a resumed conversation, a line each."""
        said = recent_exchanges(session.storage, session.agent.name)
        if not said:
            return
        self.console.print("[dim]Recent conversation:[/]")
        for who, text, when in said:
            if who == "you":
                line, style = f"  {when.astimezone():%Y-%m-%d %H:%M} you: {_one_line(text)}", "dim"
            else:
                line, style = f"  {session.agent.name}: {_one_line(text)}", "dim cyan"
            # one line each, however narrow the terminal
            self.console.print(line, style=style, markup=False, no_wrap=True, overflow="ellipsis")

    def event(self, event: AgentEvent) -> None:
        if event.kind == "result" and event.function == "send_message":
            return
        self.console.print(f"{self.LABELS[event.kind]} {event.text}", style=self.STYLES[event.kind], markup=False)

    def turn(self, result: TurnResult) -> None:
        pass

    def error(self, message: str) -> None:
        self.console.print(f"✗ {message}", style="bold red", markup=False)

    def info(self, message: str) -> None:
        self.console.print(message, markup=False)


def _quiet_terminal(fd: int) -> list[Any] | None:
    """Stop the terminal on ``fd`` echoing and editing lines, leaving what is typed queued for the next
    prompt (Ctrl-C still interrupts, without flushing the queue); the settings to restore, or None when
    ``fd`` is no terminal."""
    try:
        import termios

        if not os.isatty(fd):
            return None
        saved = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[0] &= ~termios.ICRNL  # Enter stays a carriage return, as the line editor reads it
        mode[3] = (mode[3] & ~(termios.ECHO | termios.ICANON)) | termios.NOFLSH
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        return saved
    except (ImportError, OSError, ValueError):
        return None


def start_live(live: Any) -> None:
    """Start a rich ``Live`` display (``Progress`` too) whose refresh thread never receives Ctrl-C: a thread
    inherits its creator's signal mask, so SIGINT is blocked while it starts. Otherwise SIGINT may land in
    that thread, and the main thread, waiting in C (a sleep, a socket, a model), would not notice it."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        live.__enter__()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        live.__enter__()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Activity:
    """While a turn runs in a terminal: a spinner, the seconds it has taken and what the agent is doing
    (told through ``Agent.on_status``), until the turn ends or Ctrl-C stops it. Keys typed meanwhile are
    neither echoed nor lost (``_quiet_terminal``): the next prompt reads them. Off the record: nothing of
    it stays on screen."""

    def __init__(self, view: RichView, session: Any, what: str = "working") -> None:
        self.console = view.console
        self.session = session
        self.what = what
        self.server = bool(getattr(session.model, "endpoint", None))
        self.start = time.monotonic()

    def set(self, what: str) -> None:
        if self.server and what.startswith("generating"):
            what = "waiting for the server" + what[len("generating") :]
        self.what = what

    def __rich__(self) -> Any:
        from rich.text import Text

        seconds = int(time.monotonic() - self.start)
        elapsed = f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"
        self._spinner.update(text=Text(f"{self.what} · {elapsed} · Ctrl-C stops", style="cyan"))
        return self._spinner

    def __enter__(self) -> Activity:
        from rich.live import Live
        from rich.spinner import Spinner

        self._spinner = Spinner("dots", style="cyan")
        self._stdin = sys.stdin.fileno() if sys.stdin is not None and not sys.stdin.closed else -1
        self._saved = _quiet_terminal(self._stdin)
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=True)
        start_live(self._live)
        self.session.agent.on_status = self.set
        return self

    def __exit__(self, *exc: Any) -> None:
        self.session.agent.on_status = None
        try:
            self._live.__exit__(*exc)
        finally:
            if self._saved is not None:
                import termios

                termios.tcsetattr(self._stdin, termios.TCSANOW, self._saved)


def _busy(view: Any, session: Any, what: str) -> Any:
    """``Activity`` when ``view`` shows a terminal; else nothing (piped output, JSON lines)."""
    if isinstance(view, RichView) and view.console.is_terminal:
        return Activity(view, session, what)
    return contextlib.nullcontext()


def _attempt(view: Any, action: Callable[[], TurnResult | None]) -> bool:
    """Run one turn (under the turn deadline, if one is set); show its summary, or its error. True if it
    went through."""
    from memgpt.http import turn_deadline

    try:
        with turn_deadline(getattr(view, "turn_timeout", None)):
            result = action()
    except MemGPTError as exc:
        view.error(f"{exc} (your message is kept: /retry sends it again)")
        return False
    if result is not None:
        view.turn(result)
    return True


def _greet(session: Any, view: Any) -> bool:
    from memgpt.agent import events

    agent = session.agent
    last = agent.state.last_login
    agent.state.last_login = events.now_text()
    return _attempt(view, lambda: agent.send_event(events.login(last)))


def stdin_lines(view: Any) -> Iterable[str]:
    """Lines of stdin as bytes decoded here: a line that is not UTF-8 is sent with U+FFFD for its bad
    bytes (and the view is told), never dropped with the rest of the input."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream without bytes underneath (tests)
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    for number, raw in enumerate(stream, 1):
        raw = raw.rstrip(b"\n")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            view.info(f"input line {number} is not UTF-8 (byte {raw[exc.start]:#04x}); its bad bytes are sent as \ufffd")
            yield raw.decode("utf-8", errors="replace")


def run_scripted(session: Any, view: Any, lines: Iterable[str], *, greet: bool) -> int:
    """Send each non-empty line (slash commands work too); return how many turns failed."""
    errors = 0
    if greet and not _greet(session, view):
        errors += 1
    for line in map(clean_line, lines):
        if not line.strip():
            continue
        if line.startswith("/"):
            if _command(session, view, line) is False:
                break
            continue
        if not _attempt(view, functools.partial(session.agent.send, line)):
            errors += 1
    return errors


PROMPT = "[bold green]you[/]"


class LineReader:
    """Lines from a file descriptor with a deadline: ``readline(deadline)`` returns None when the deadline
    (``time.time()``) passes before a whole line is in. Reads the descriptor itself, so lines that arrive
    together (a paste) wait in its own buffer, where ``select`` cannot miss them."""

    def __init__(self, fd: int, encoding: str = "utf-8") -> None:
        self.fd = fd
        self.encoding = encoding
        self._buffer = b""
        self._eof = False

    def readline(self, deadline: float | None) -> str | None:
        while b"\n" not in self._buffer and not self._eof:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, 4096)
            self._eof = not chunk
            self._buffer += chunk
        if not self._buffer:
            raise EOFError
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(self.encoding, errors="replace").rstrip("\r")


def _ask(view: RichView, reader: Any, deadline: float | None) -> str | None:
    """The user's next line; None when the deadline (the next timed heartbeat) comes first."""
    if not isinstance(reader, LineReader):  # the terminal's line editor prints its own prompt
        line: str | None = reader.readline(deadline)
        return line
    view.console.print(f"{PROMPT}: ", end="")
    line = reader.readline(deadline)
    if line is None:
        view.console.print()
    return None if line is None else clean_line(line)


def _reader(stdin_fd: int | None) -> Any:
    """The line editor in a terminal; a plain descriptor reader for ``stdin_fd`` (tests) or without one."""
    if stdin_fd is None and sys.stdin.isatty() and sys.stdout.isatty():
        from memgpt.cli.line_input import TerminalInput
        from memgpt.config import home

        return TerminalInput(home() / "history")
    return LineReader(stdin_fd if stdin_fd is not None else sys.stdin.fileno(), "utf-8")


def run_interactive(session: Any, view: RichView, *, greet: bool, stdin_fd: int | None = None) -> None:
    if session.agent.next_heartbeat_at() is not None and os.name == "nt":
        view.error("timed heartbeats need a POSIX terminal; they are off in this session")
    reader = _reader(stdin_fd)
    timed = os.name != "nt"
    if greet:
        _greet(session, view)
    while True:
        try:
            line = _ask(view, reader, session.agent.next_heartbeat_at() if timed else None)
        except (EOFError, KeyboardInterrupt):
            view.info("Bye.")
            return
        if line is None:
            try:
                with _busy(view, session, "heartbeat"):
                    _attempt(view, session.agent.timed_heartbeat)
            except KeyboardInterrupt:
                view.error("interrupted: the agent stays at its last completed step")
            continue
        if not line.strip():
            continue
        if line.startswith("/"):
            try:
                with _busy(view, session, "working") if line.split()[0] in _TURNS else contextlib.nullcontext():
                    stop = _command(session, view, line) is False
            except KeyboardInterrupt:
                view.error("interrupted: the agent stays at its last completed step")
                continue
            if stop:
                return
            continue
        try:
            with _busy(view, session, "reading your message"):
                _attempt(view, functools.partial(session.agent.send, line))
        except KeyboardInterrupt:
            view.error("interrupted: the agent stays at its last completed step (your message is kept: /retry)")


#: Slash commands that run a turn of the agent (the spinner shows while they do).
_TURNS = frozenset({"/retry", "/heartbeat", "/summarize"})


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[Any, Any, str], bool | None]


def _memory(session: Any, view: Any, arg: str) -> None:
    agent = session.agent
    view.info(agent.core_memory.render())
    view.info(
        f"recall: {agent.storage.count_messages(agent.name)} messages; archival: {agent.storage.count_passages(agent.name)} passages"
    )


def _count(view: Any, command: str, arg: str, default: int) -> int | None:
    """The ``[n]`` of a slash command: ``default`` when blank, else a positive whole number (None and a
    usage line otherwise, so a typo never pops or dumps something unintended)."""
    text = arg.strip()
    if not text:
        return default
    if text.isdigit() and int(text) > 0:
        return int(text)
    view.error(f"usage: /{command} [n], n a whole number of 1 or more (got {text!r})")
    return None


def _dump(session: Any, view: Any, arg: str) -> None:
    if arg.strip() == "prompt":  # the whole prompt, system part included, as the next step sends it
        view.info(session.agent.render_prompt())
        return
    n = _count(view, "dump", arg, 10)
    if n is None:
        return
    for m in session.agent.context_messages()[-n:]:
        body = (
            json.dumps({"function": m.function_call.name, "params": m.function_call.arguments}, ensure_ascii=False)
            if m.function_call
            else m.content
        )
        view.info(f"[{m.role}{'/' + m.name if m.name else ''}] {body}")


def _pop(session: Any, view: Any, arg: str) -> None:
    n = _count(view, "pop", arg, 1)
    if n is None:
        return
    view.info(f"removed {session.agent.pop(n)} messages from the context window (they stay in recall memory)")


def _retry(session: Any, view: Any, arg: str) -> None:
    if not _attempt(view, session.agent.retry):
        return
    if session.agent.last_user_message() is None:
        view.info("nothing to retry")


def _rethink(session: Any, view: Any, arg: str) -> None:
    if not arg.strip():
        view.error("usage: /rethink NEW INNER THOUGHTS")
    elif session.agent.rethink(arg.strip()):
        view.info("replaced the inner thoughts of the last call")
    else:
        view.info("no call to rethink yet")


def _heartbeat(session: Any, view: Any, arg: str) -> None:
    from memgpt.agent import events

    _attempt(view, lambda: session.agent.send_event(events.heartbeat("user asked for a heartbeat")))


def _summarize(session: Any, view: Any, arg: str) -> None:
    _attempt(view, session.agent.summarize)


def _help(session: Any, view: Any, arg: str) -> None:
    for name, command in COMMANDS.items():
        view.info(f"/{name:<10} {command.help}")


COMMANDS: dict[str, Command] = {
    "exit": Command("save and quit (every step is already saved)", lambda s, v, a: False),
    "memory": Command("show core memory and memory sizes", _memory),
    "dump": Command("/dump [n|prompt]: show the last n messages in the context window, or the whole prompt", _dump),
    "pop": Command("/pop [n]: remove the last n exchanges from the context window", _pop),
    "retry": Command("send your last (or unanswered) message again", _retry),
    "rethink": Command("/rethink TEXT: replace the agent's last inner thoughts", _rethink),
    "heartbeat": Command("give the agent a turn without a message", _heartbeat),
    "summarize": Command("summarize the oldest messages now", _summarize),
    "help": Command("this list", _help),
}


def _command(session: Any, view: Any, line: str) -> bool | None:
    name, _, arg = line[1:].partition(" ")
    command = COMMANDS.get(name.strip().lower())
    if command is None:
        view.error(f"unknown command /{name}; try /help")
        return None
    return command.run(session, view, arg)
