"""Running a suite: a throwaway MEMGPT_HOME per run, the real agent opened through ``open_session``."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memgpt.agent import events
from memgpt.config import Config
from memgpt.errors import ConfigError, MemGPTError
from memgpt.eval.scoring import TurnRecord, record_turn, score_turn
from memgpt.eval.suite import Suite, Turn

AGENT = "eval"


@dataclass
class RunResult:
    suite: str
    wrapper: str
    repeat: int
    turns: list[TurnRecord] = field(default_factory=list)
    #: Whether the facts told had left the context window before the next session (None: no facts).
    pushed_out: bool | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "wrapper": self.wrapper,
            "repeat": self.repeat,
            "pushed_out": self.pushed_out,
            "seconds": round(self.seconds, 3),
            "turns": [t.to_json() for t in self.turns],
        }


@contextlib.contextmanager
def _home(path: Path) -> Iterator[None]:
    before = os.environ.get("MEMGPT_HOME")
    os.environ["MEMGPT_HOME"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MEMGPT_HOME", None)
        else:
            os.environ["MEMGPT_HOME"] = before


class _Quiet:
    """The load display ``memgpt load`` draws, with nothing drawn."""

    def phase(self, what: str) -> None: ...

    def note(self, text: str) -> None: ...

    def update(self) -> None: ...


def _load_documents(config: Config, storage: Any, documents: tuple[tuple[str, str], ...], folder: Path) -> None:
    """The suite's documents into archival memory by ``memgpt load``'s own path (chunk, embed, store)."""
    from memgpt.cli.load_cmd import Tally, _load_files

    folder.mkdir()
    files = []
    for name, text in documents:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        files.append(path)
    _load_files(config, storage, AGENT, files, 32, Tally(len(files)), _Quiet())


def _in_context(agent: Any, text: str) -> bool:
    for message in agent.messages:
        said = events.user_text(message.content) if message.role == "user" else None
        if said is not None and text in said:
            return True
    return False


def _options(suite: Suite, wrapper: str) -> Any:
    from memgpt.session import AgentOptions

    model: dict[str, Any] = {"wrapper": wrapper}
    if suite.context_window:
        model["context_window"] = suite.context_window
    if suite.max_tokens:
        model["max_tokens"] = suite.max_tokens
    return AgentOptions(name=AGENT, model=model)


def run_suite(
    config: Config,
    suite: Suite,
    wrapper: str,
    *,
    repeat: int = 0,
    on_turn: Callable[[Turn], None] | None = None,
    progress: Callable[[TurnRecord], None] | None = None,
) -> RunResult:
    """One run of ``suite`` with ``wrapper`` on a new agent in a new, temporary MEMGPT_HOME (removed after).
    ``on_turn`` is told each turn before it is sent; ``progress`` gets each turn's record after it."""
    from memgpt.config import StorageSettings
    from memgpt.session import open_session, open_storage

    # A throwaway agent never goes into the user's database: SQLite in the temporary home.
    config = config.model_copy(update={"storage": StorageSettings()})
    run = RunResult(suite=suite.name, wrapper=wrapper, repeat=repeat)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="memgpt-eval-") as tmp, _home(Path(tmp) / "home"):
        options = _options(suite, wrapper)
        if suite.documents:
            open_session(config, options).close()  # create the agent, as `memgpt run` would, before loading
            storage = open_storage(config)
            try:
                _load_documents(config, storage, suite.documents, Path(tmp) / "documents")
            finally:
                storage.close()
        facts: list[str] = []
        for number, session_spec in enumerate(suite.sessions):
            session = open_session(config, options)
            try:
                agent = session.agent
                # The agent seeds each generation from a counter that starts at 0: each repeat starts its
                # counter elsewhere, so that --repeat samples different runs from a seeded backend.
                agent._seed = repeat * 100_000
                registered = set(agent.functions)
                turns = list(session_spec.turns)
                for turn in turns:
                    run.turns.append(_send(agent, turn, number, registered, on_turn, progress))
                    if turn.kind == "fact":
                        facts.append(turn.text)
                fills = 0
                while session_spec.fill and any(_in_context(agent, f) for f in facts) and fills < session_spec.fill_max:
                    say = session_spec.fill[fills % len(session_spec.fill)]
                    run.turns.append(_send(agent, Turn(say=say, kind="filler", fill=True), number, registered, on_turn, progress))
                    fills += 1
                if facts and number + 1 < len(suite.sessions):
                    pushed = not any(_in_context(agent, f) for f in facts)
                    run.pushed_out = pushed if run.pushed_out is None else run.pushed_out and pushed
            finally:
                session.close()
    run.seconds = time.monotonic() - started
    return run


def _send(
    agent: Any,
    turn: Turn,
    session: int,
    registered: set[str],
    on_turn: Callable[[Turn], None] | None,
    progress: Callable[[TurnRecord], None] | None,
) -> TurnRecord:
    text = turn.text
    record = TurnRecord(session=session, kind=turn.kind, said=text if len(text) <= 80 else text[:77] + "...")
    if on_turn is not None:
        on_turn(turn)
    started = time.monotonic()
    try:
        result = agent.send(text)
    except ConfigError:
        raise  # the setup is wrong (a window too small): no turn can run
    except MemGPTError as exc:
        record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        record_turn(record, result, registered)
    record.seconds = time.monotonic() - started
    if turn.check is not None:
        score_turn(record, turn.check, agent.core_memory.render())
    if progress is not None:
        progress(record)
    return record
