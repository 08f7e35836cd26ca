"""The agents a server holds open, and the rule that keeps each one whole: one chain at a time per agent.

Every operation that changes an agent (a message, a retry, a core memory edit, an archival insert, a
delete) first *claims* the agent. A claim on an agent that is already claimed fails at once with
``AgentInUse`` (the HTTP layer answers 409): the server never queues, so a client always knows whether its
message was taken. A claimed turn runs in its own thread, which releases the claim when the turn ends,
whether or not the client is still listening: a client that goes away never leaves an agent half-stepped,
because the step is the agent's own (``memgpt.agent``: each step commits in one transaction) and it runs
to its end.

An agent is opened with ``memgpt.session.open_session``, exactly as ``memgpt run`` opens it, so the
one-session-per-agent file lock (``memgpt.locking``) is held for as long as the server keeps the agent
open: a ``memgpt run`` on the same agent fails while the server holds it, and the server answers 409 for
an agent a ``memgpt run`` holds. An agent idle for ``idle_close`` seconds is closed (its lock released);
at most ``max_open`` agents are open at once (the least recently used idle one is closed to make room).

Different agents run in parallel threads; how much of that is real is up to the backend (llama-server
with ``-np N`` slots serves N at once; the in-process engine is shared and serialises).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from memgpt.agent.agent import AgentEvent
from memgpt.agent.state import AgentState
from memgpt.config import Config, load_config
from memgpt.errors import AgentBusyError
from memgpt.session import AgentOptions, Session, open_session, open_storage

log = logging.getLogger("memgpt.server")

#: Agent names the server accepts: what is safe in a URL path, a file name and a log line.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit"


class AgentNotFound(LookupError):
    pass


class AgentInUse(RuntimeError):
    """The agent is running a chain (here), or is open in another memgpt process."""


class NoCapacity(RuntimeError):
    """Every open agent is busy and the server may not open another."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(f"invalid agent name {name[:80]!r}: {NAME_RULE}")
    return name


def pending_of(settings: dict[str, Any]) -> list[str]:
    """Every unanswered user message of a stored agent, oldest first (as ``Agent.pending_messages``)."""
    return AgentState.load(settings).pending_messages


@dataclass
class Slot:
    """One agent as the server knows it: its claim, its open session (if any), and where events go."""

    name: str
    claim: threading.Lock = field(default_factory=threading.Lock)
    session: Session | None = None
    last_used: float = field(default_factory=time.monotonic)
    sink: Callable[[AgentEvent], None] | None = None

    def dispatch(self, event: AgentEvent) -> None:
        sink = self.sink
        if sink is not None:
            sink(event)


@dataclass
class Turn:
    """A turn running in its own thread; ``wait()`` gives its result, or raises what it raised."""

    thread: threading.Thread
    result: Any = None  # what the action returned: a TurnResult for a turn
    error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> Any:
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result


class Host:
    def __init__(
        self,
        *,
        config: Callable[[], Config] = load_config,
        idle_close: float = 300.0,
        max_open: int = 16,
        turn_timeout: float | None = None,
        warm_embedder: bool = True,
    ) -> None:
        self._config = config
        self.warm_embedder = warm_embedder
        self.idle_close = idle_close
        self.max_open = max_open
        self.turn_timeout = turn_timeout
        self._lock = threading.Lock()  # guards _slots
        self._slots: dict[str, Slot] = {}
        self.turns: set[threading.Thread] = set()

    # ---- storage reads (no claim: they see what the last committed step left) ----

    @contextlib.contextmanager
    def storage(self) -> Iterator[Any]:
        storage = open_storage(self._config())
        try:
            yield storage
        finally:
            storage.close()

    def record(self, name: str) -> Any:
        with self.storage() as storage:
            record = storage.get_agent(check_name(name))
        if record is None:
            raise AgentNotFound(name)
        return record

    def busy(self, name: str) -> bool:
        with self._lock:
            slot = self._slots.get(name)
        return slot is not None and slot.claim.locked()

    def is_open(self, name: str) -> bool:
        with self._lock:
            slot = self._slots.get(name)
        return slot is not None and slot.session is not None

    # ---- claims ----

    def _slot(self, name: str) -> Slot:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = self._slots[name] = Slot(name)
            return slot

    def claim(self, name: str) -> Slot:
        """Claim ``name`` (``AgentInUse`` if it is busy); release with ``release(slot)``."""
        slot = self._slot(check_name(name))
        if not slot.claim.acquire(blocking=False):
            raise AgentInUse(f"agent {name!r} is busy with another message; send this one when that turn has ended")
        slot.last_used = time.monotonic()
        return slot

    def release(self, slot: Slot) -> None:
        slot.sink = None
        slot.last_used = time.monotonic()
        slot.claim.release()

    def open(self, slot: Slot, options: AgentOptions | None = None, *, create: bool = False) -> Session:
        """The claimed agent's session, opened if needed. ``create``: the agent must not exist yet;
        otherwise it must."""
        if slot.session is not None:
            if create:
                raise FileExistsError(slot.name)
            return slot.session
        exists = self._exists(slot.name)
        if create and exists:
            raise FileExistsError(slot.name)
        if not create and not exists:
            raise AgentNotFound(slot.name)
        self._make_room()
        try:
            session = open_session(self._config(), options or AgentOptions(name=slot.name), on_event=slot.dispatch)
        except AgentBusyError:
            raise AgentInUse(
                f"agent {slot.name!r} is open in another memgpt session (a `memgpt run`); finish that one first"
            ) from None
        slot.session = session
        if self.warm_embedder:
            session.agent.warm_embedder()
        return session

    def _exists(self, name: str) -> bool:
        with self.storage() as storage:
            return storage.get_agent(name) is not None

    def _make_room(self) -> None:
        with self._lock:
            opened = [s for s in self._slots.values() if s.session is not None]
        if len(opened) < self.max_open:
            return
        for slot in sorted(opened, key=lambda s: s.last_used):
            if slot.claim.acquire(blocking=False):
                try:
                    self._close(slot)
                finally:
                    slot.claim.release()
                return
        raise NoCapacity(f"all {self.max_open} open agents are busy (--max-open); try again when a turn has ended")

    def _close(self, slot: Slot) -> None:
        session, slot.session = slot.session, None
        if session is not None:
            session.close()

    def close_idle(self) -> int:
        """Close agents idle for ``idle_close`` seconds (releasing their locks); how many were closed."""
        now = time.monotonic()
        with self._lock:
            slots = list(self._slots.values())
        closed = 0
        for slot in slots:
            if slot.session is not None and now - slot.last_used >= self.idle_close and slot.claim.acquire(blocking=False):
                try:
                    if slot.session is not None:
                        self._close(slot)
                        closed += 1
                finally:
                    slot.claim.release()
        return closed

    def close_all(self, wait: float = 30.0) -> None:
        """At shutdown: let running turns end (up to ``wait`` seconds), then close every session."""
        deadline = time.monotonic() + wait
        for thread in list(self.turns):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            if slot.claim.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    self._close(slot)
                finally:
                    slot.claim.release()

    # ---- what changes an agent ----

    def create(self, options: AgentOptions) -> Session:
        assert options.name is not None
        slot = self.claim(options.name)
        try:
            return self.open(slot, options, create=True)
        finally:
            self.release(slot)

    def delete(self, name: str) -> None:
        from memgpt.session import agent_lock

        slot = self.claim(name)
        try:
            self._close(slot)
            if not self._exists(name):
                raise AgentNotFound(name)
            try:
                with self.storage() as storage, agent_lock(storage, name):  # the engine's lock where it has one
                    storage.delete_agent(name)
            except AgentBusyError:
                raise AgentInUse(
                    f"agent {name!r} is open in another memgpt session (a `memgpt run`); finish that one first"
                ) from None
            with self._lock:
                self._slots.pop(name, None)
        finally:
            self.release(slot)

    def with_agent(self, name: str, action: Callable[[Any], Any]) -> Any:
        """Run ``action(agent)`` on the claimed, opened agent (memory edits, archival)."""
        slot = self.claim(name)
        try:
            return action(self.open(slot).agent)
        finally:
            self.release(slot)

    def start_turn(
        self,
        name: str,
        action: Callable[[Any], Any],
        sink: Callable[[AgentEvent], None],
        on_done: Callable[[], None] = lambda: None,
    ) -> Turn:
        """Claim and open ``name``, then run ``action(agent)`` in a thread of its own that sends every event
        to ``sink`` as it happens, releases the claim when the turn ends (whatever the client does) and
        then calls ``on_done``.
        Claiming and opening happen here, so ``AgentInUse`` / ``AgentNotFound`` come before any event."""
        from memgpt.http import turn_deadline

        slot = self.claim(name)
        try:
            session = self.open(slot)
        except BaseException:
            self.release(slot)
            raise
        slot.sink = sink

        def run() -> None:
            try:
                with turn_deadline(self.turn_timeout):
                    turn.result = action(session.agent)
            except BaseException as exc:  # reported to the request; the agent stays at its last committed step
                turn.error = exc
            finally:
                self.release(slot)
                self.turns.discard(thread)
                on_done()

        thread = threading.Thread(target=run, name=f"turn-{name}", daemon=True)
        turn = Turn(thread)
        self.turns.add(thread)
        thread.start()
        return turn
