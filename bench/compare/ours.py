"""Drive our ``memgpt run --non-interactive``: one message per stdin line, one JSON object per event on stdout.

Interface used (core/src/memgpt/cli/agent_cmds.py and cli/chat.py): ``memgpt run --agent NAME --first
--non-interactive --model-endpoint-type B [--model-endpoint URL] --model-wrapper W --context-window N``.
stdout: a ``session`` object once the agent is ready, then per message the events (``thought``, ``call``,
``result``, ``assistant``, ``alert``) and one closing ``turn`` (``usage.evaluated_tokens`` and the outcome:
``answered``, ``stopped_by``, ``reply_step``, ``calls``, ``thoughts``, ``memory_edits``, ``searches``) or ``error``.
Each message is written only after the previous turn closed, so per-turn times are those of the agent alone.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import calls
import cputime
from llama_server import ROOT, LlamaServer
from results import Run, Turn

MEMGPT = ROOT / ".venv/bin/memgpt"


def env_for(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MEMGPT_HOME": str(home),
        "XDG_CACHE_HOME": str(home / "xdg-cache"),
        "MEMGPT_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


class _Lines:
    """stdout of the child, one parsed JSON object per line, with arrival times."""

    def __init__(self, stream: Any) -> None:
        self.queue: queue.Queue[tuple[float, dict[str, Any] | None]] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for raw in stream:
            line = raw.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                value = {"type": "non-json", "text": line}
            self.queue.put((time.monotonic(), value if isinstance(value, dict) else {"type": "non-json", "text": line}))
        self.queue.put((time.monotonic(), None))

    def next(self, timeout: float) -> tuple[float, dict[str, Any] | None]:
        return self.queue.get(timeout=timeout)


def run(server: LlamaServer | None, backend: str, wrapper: str, messages: list[str], *, context: int, workdir: Path,
        turn_timeout: float = 600) -> Run:  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix=f"ours-{backend}-{wrapper}-", dir=workdir))
    argv = [str(MEMGPT), "run", "--agent", "bench", "--first", "--non-interactive", "--yes",
            "--model-endpoint-type", backend, "--model-wrapper", wrapper, "--context-window", str(context)]  # fmt: skip
    if server is not None:
        argv += ["--model-endpoint", server.url]
    label = f"ours {backend} {wrapper}"
    result = Run(label=label, side="ours", ready_seconds=0.0)
    stderr = open(workdir / f"ours-{backend}-{wrapper}.stderr.log", "w")
    transcript = open(workdir / f"ours-{backend}-{wrapper}.jsonl", "w")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env_for(home),
                            text=True, bufsize=1, cwd=str(home))  # fmt: skip
    lines = _Lines(proc.stdout)
    try:
        arrived, event = lines.next(timeout=300)
        while event is not None and event.get("type") != "session":
            transcript.write(json.dumps(event) + "\n")
            arrived, event = lines.next(timeout=300)
        if event is None:
            raise RuntimeError(f"exited with {proc.wait()} before the session opened (see the stderr log)")
        result.ready_seconds = arrived - started
        result.ready_cpu_seconds = cputime.of_pid(proc.pid)
        transcript.write(json.dumps(event) + "\n")
        for message in messages:
            result.turns.append(_turn(proc, lines, server, message, turn_timeout, transcript))
    except (RuntimeError, queue.Empty, BrokenPipeError) as exc:
        result.failed = f"{type(exc).__name__}: {exc}"[:600]
    finally:
        try:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(60)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            proc.terminate()
            proc.wait()
        stderr.close()
        transcript.close()
    return result


def _turn(proc: subprocess.Popen[str], lines: _Lines, server: LlamaServer | None, message: str, turn_timeout: float,
          transcript: Any) -> Turn:  # fmt: skip
    mark = server.recorder.mark() if server is not None else 0
    server_pid = server.proc.pid if server is not None else None
    cpu = cputime.of_pid(proc.pid) + cputime.of_pid(server_pid)
    started = time.monotonic()
    proc.stdin.write(message + "\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    turn = Turn(message=message, seconds=0.0, reported_call=False, answered=False, reply_step=False, calls=0, thoughts=0,
                memory_edits=0, searches=0)  # fmt: skip
    while True:
        arrived, event = lines.next(timeout=turn_timeout)
        if event is None:
            raise RuntimeError(f"memgpt exited with {proc.wait()} in the middle of a turn")
        transcript.write(json.dumps(event) + "\n")
        kind = event.get("type")
        _count(turn, event)
        if kind == "turn":
            usage = event.get("usage") or {}
            turn.evaluated_tokens = usage.get("evaluated_tokens")
            _outcome(turn, event)
            break
        if kind == "error" and "raw" not in event:
            # A typed error that ended the turn (the CLI's own error line). An agent "error" event carrying
            # the model's "raw" output (no valid call after re-asks) is followed by the turn summary instead.
            turn.exceptions.append(str(event.get("text", ""))[:240])
            break
    turn.seconds = arrived - started
    turn.cpu_seconds = cputime.of_pid(proc.pid) + cputime.of_pid(server_pid) - cpu
    if server is not None:
        turn.exchanges = server.recorder.since(mark)
    return turn


def _count(turn: Turn, event: dict[str, Any]) -> None:
    """Outcome from the events themselves (all there is when a typed error ends the turn without a ``turn`` line)."""
    kind = event.get("type")
    if kind == "thought":  # emitted once per call whose inner thoughts are not empty
        turn.thoughts = (turn.thoughts or 0) + 1
    if kind in ("call", "assistant"):  # send_message shows as "assistant", other functions as "call"
        function = event.get("function")
        turn.reported_call = True
        turn.calls = (turn.calls or 0) + 1
        turn.answered = turn.answered or kind == "assistant"
        turn.memory_edits = (turn.memory_edits or 0) + (function in calls.MEMORY_EDITS)
        turn.searches = (turn.searches or 0) + (function in calls.SEARCHES)


def _outcome(turn: Turn, line: dict[str, Any]) -> None:
    """The ``turn`` line's own account (``TurnResult.outcome()``) wins over the event counts where it has one;
    a key it lacks (``reply_step`` before that step existed) keeps the count, false for the reply step."""
    turn.answered = bool(line.get("answered", turn.answered))
    turn.stopped_by = line.get("stopped_by")
    turn.reply_step = bool(line.get("reply_step", False))
    for name in ("calls", "thoughts", "memory_edits", "searches"):
        value = line.get(name)
        if isinstance(value, int):
            setattr(turn, name, value)
