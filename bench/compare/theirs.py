"""Drive the original ``memgpt run`` (pymemgpt 0.3.25) through its interactive CLI on a pseudo-terminal.

Its CLI has no non-interactive mode: every message is read by a questionary prompt ("Enter your message:").
We start a new agent with ``--first`` (the user speaks first, as on our side) and ``--strip-ui``, type each
message, and take the turn as over when the prompt comes back. When ``agent.step()`` raises, the CLI prints
the traceback and asks "Retry agent.step()?": we answer no (counted as an exception) and go on. Its heartbeat
chains have no cap, so the driver interrupts a turn (Ctrl-C, then "no") after ``max_calls`` completions or
``turn_timeout`` seconds and records it as aborted.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import cputime
import pymemgpt_env
from llama_server import LlamaServer
from pty_session import ACCEPTED, Exited, PtySession, Timeout
from results import Run, Turn

PROMPT = r"Enter your message:"
RETRY = r"Retry agent\.step\(\)\?"
EXCEPTION = "An exception occurred when running agent.step()"


def _exception_lines(output: str) -> list[str]:
    """The last line of each traceback printed in ``output`` (the exception type and message)."""
    found = []
    for block in output.split(EXCEPTION)[1:]:
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        tail = [ln for ln in lines if re.match(r"^[A-Za-z_.]+(Error|Exception|Warning)\b", ln)]
        found.append((tail[-1] if tail else (lines[-2] if len(lines) > 1 else "?"))[:240])
    return found


def run(server: LlamaServer, wrapper: str, messages: list[str], *, context: int, workdir: Path,
        max_calls: int = 12, turn_timeout: float = 600) -> Run:  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix=f"pymemgpt-{wrapper}-", dir=workdir))
    pymemgpt_env.write_config(home, endpoint=server.url, wrapper=wrapper, context_window=context)
    argv = [str(pymemgpt_env.memgpt_cli()), "run", "--agent", "bench", "--first", "-y", "--strip-ui"]
    started = time.monotonic()
    session = PtySession(argv, env=pymemgpt_env.offline_env(home), cwd=str(home))
    result = Run(label=f"pymemgpt 0.3.25 llamacpp {wrapper}", side="theirs", ready_seconds=0.0)
    try:
        session.expect([PROMPT], timeout=300)
        result.ready_seconds = time.monotonic() - started
        result.ready_cpu_seconds = cputime.of_pid(session.proc.pid)
        for message in messages:
            result.turns.append(_turn(session, server, message, max_calls, turn_timeout))
        session.sendline("/exit")
        session.expect([r"Finished\."], timeout=60)
    except (Timeout, Exited) as exc:
        result.failed = str(exc)[:600]
    finally:
        session.close()
        (workdir / f"pymemgpt-{wrapper}.log").write_text(session.log, encoding="utf-8")
    return result


def _turn(session: PtySession, server: LlamaServer, message: str, max_calls: int, turn_timeout: float) -> Turn:
    mark = server.recorder.mark()
    before = len(session.log)
    cpu = cputime.of_pid(session.proc.pid) + cputime.of_pid(server.proc.pid)
    started = time.monotonic()
    session.sendline(message)
    # prompt_toolkit redraws the prompt with the typed text: wait until the line is taken, then for the next prompt.
    session.expect([re.escape(ACCEPTED)], timeout=60)
    aborted = ""
    while True:
        try:
            index, _ = session.expect([PROMPT, RETRY], timeout=5)
            break
        except Timeout:
            calls = len(server.recorder.since(mark))
            if calls >= max_calls or time.monotonic() - started > turn_timeout:
                aborted = f"stopped after {calls} completions / {time.monotonic() - started:.0f}s (no cap on heartbeat chains)"
                session.interrupt()
                index, _ = session.expect([PROMPT, RETRY], timeout=600)
                break
    seconds = time.monotonic() - started
    cpu = cputime.of_pid(session.proc.pid) + cputime.of_pid(server.proc.pid) - cpu
    if index == 1:  # "Retry agent.step()?": no (a single key press)
        session.send("n")
        session.expect([PROMPT], timeout=60)
    output = session.log[before:]
    exceptions = _exception_lines(output)
    if aborted and exceptions and "KeyboardInterrupt" in exceptions[-1]:
        exceptions.pop()
    return Turn(
        message=message,
        seconds=seconds,
        cpu_seconds=cpu,
        exchanges=server.recorder.since(mark),
        exceptions=exceptions,
        aborted=aborted,
    )
