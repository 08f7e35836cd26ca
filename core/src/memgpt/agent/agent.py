"""The MemGPT step loop.

One *step* is one model turn: build the context → wrapper → constraint → backend → parse → validate →
execute → persist. A user message starts a *chain* of steps that continues while the model asks for a
heartbeat (or a call fails), up to ``Limits.max_chain``. Each step's writes (its input messages, the
model's call, the call's result, core memory and the context window) commit in one storage transaction,
so a crash leaves the agent exactly at its previous step. The user's message is stored as *pending*
before the chain starts and cleared by the first step that commits, so it survives any failure.

*Timed heartbeats* (off unless ``Limits.heartbeat_minutes`` is set) wake the agent after that long
without a message; ``pause_heartbeats`` defers them. The agent says when one is due
(``next_heartbeat_at``); the interactive front end sends it (``timed_heartbeat``) while it waits for input.

The prompt is laid out for prefix reuse: system text and function docs (never change), core memory as
*shown*, then the conversation, append-only between summaries. An edit takes effect at once, and its
function result carries the block's new text; the shown copy at the top is brought up to date only when
the conversation is rewritten anyway (a summary, ``pop``). Re-rendering it on every edit would make the
backend re-evaluate the whole conversation after it, on every edit.

This module is the step loop and the agent's public face; ``Agent`` is built in layers, one job each:
``_base`` (components, reporting, saving), ``_generate`` (prompt, constraint, completion, parse),
``_context`` (the context window's budget and summaries), ``_history`` (``pop``, ``rethink``), and the
saved state is ``memgpt.agent.state.AgentState``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from memgpt._faults import reached
from memgpt.agent import events
from memgpt.agent._context import MIN_CONVERSATION_TOKENS as MIN_CONVERSATION_TOKENS
from memgpt.agent._functions import HandlerContext
from memgpt.agent._history import History
from memgpt.agent._results import MEMORY_EDITS as MEMORY_EDITS
from memgpt.agent._results import SEARCHES as SEARCHES
from memgpt.agent._results import AgentEvent as AgentEvent
from memgpt.agent._results import EventKind as EventKind
from memgpt.agent._results import Limits as Limits
from memgpt.agent._results import StopReason as StopReason
from memgpt.agent._results import TurnResult as TurnResult
from memgpt.agent.state import AgentState
from memgpt.contract.backend import Backend
from memgpt.contract.types import Constraint, FunctionCall, Message
from memgpt.contract.wrapper import Wrapper
from memgpt.errors import EmbeddingError, FunctionError
from memgpt.functions.spec import FunctionContext, FunctionSpec
from memgpt.memory.chunking import chunk_text, chunking_for
from memgpt.memory.core import CoreMemory
from memgpt.storage.base import AgentRecord, Storage

log = logging.getLogger("memgpt.agent")

CONTROL_ARGS = ("inner_thoughts", "request_heartbeat")
REPEATED = "not run: this call is identical to your previous one. Do something else, or reply to the user with send_message."
NO_REPLY = "the agent did not reply ({why}); /retry, or rephrase"
REPLY_FUNCTION = "send_message"
REPLY_NOW = "the user is still waiting for your reply: answer them now with send_message"
#: The result the model reads when a function raised anything but a ``FunctionError`` (a bug, logged as one).
INTERNAL_ERROR = "function failed: internal error"
#: What the agent is doing while a function runs, for ``Agent.on_status`` (others: "running NAME").
ACTIVITY = {
    "archival_memory_search": "searching archival memory",
    "archival_memory_insert": "saving to archival memory",
    "conversation_search": "searching recall memory",
    "conversation_search_date": "searching recall memory",
}


@dataclass
class _StepOutcome:
    call: FunctionCall | None
    heartbeat: str | None  # the reason to continue, or None to hand control back
    failed: bool = False
    stopped_by: StopReason | None = None  # a guard handed control back


class Agent(History):
    """A MemGPT agent bound to a storage, a backend and a wrapper; see the module docstring."""

    def __init__(
        self,
        record: AgentRecord,
        *,
        storage: Storage,
        backend: Backend,
        wrapper: Wrapper,
        system_prompt: str,
        functions: Sequence[FunctionSpec],
        build_constraint: Callable[[Sequence[Any], Any], Constraint] | None = None,
        embedder: Callable[[], Any] | None = None,
        context_window: int = 4096,
        limits: Limits = Limits(),
        on_event: Callable[[AgentEvent], None] | None = None,
    ) -> None:
        self.record = record
        self.name = record.name
        self.storage = storage
        self.backend = backend
        self.wrapper = wrapper
        self.system_prompt = system_prompt
        self.functions = {f.name: f for f in functions}
        self.schemas = tuple(f.schema for f in functions)
        self.context_window = context_window
        self.limits = limits
        self.on_event = on_event
        self.core_memory = CoreMemory.from_dict(record.core_memory)
        #: What the agent keeps between sessions (saved as ``record.settings`` with each step).
        self.state = AgentState.load(record.settings)
        if self.state.core_memory_shown is None:
            self._show_current_memory()
        self.messages: list[Message] = storage.get_messages(record.name, record.in_context) if record.in_context else []
        self._embedder_factory = embedder
        self._embedder: Any = None
        self._embedder_warm = False
        self._constraint = self._make_constraint(build_constraint, self.schemas)
        replies = tuple(f.schema for f in functions if f.name == REPLY_FUNCTION)
        self._reply_constraint = self._make_constraint(build_constraint, replies) if replies else None
        self._last_activity = time.time()
        self._warned_pressure = False
        self._warned_unconstrained = False
        self._seed = 0
        #: Told what the agent starts doing ("generating", "summarizing", "searching archival memory", …), for a
        #: front end's progress display; None: nobody listens.
        self.on_status: Callable[[str], None] | None = None
        self._answering = False  # the running chain reads the pending messages (an event's chain does not)
        self._recall_only: list[Message] = []  # whole messages the next commit stores outside the context
        self._handler_context: FunctionContext = HandlerContext(self)  # what function handlers see of the agent

    # What the function handlers' context (``_functions.HandlerContext``) and the server use.

    def _get_embedder(self) -> Any:
        if self._embedder is None:
            if self._embedder_factory is None:
                raise FunctionError("archival memory is unavailable: no embedder is configured")
            try:
                self._embedder = self._embedder_factory()
            except EmbeddingError as exc:
                raise FunctionError(f"archival memory is unavailable: {exc}") from exc
        return self._embedder

    def warm_embedder(self) -> bool:
        """Load the embedder and its model now (once), outside any transaction: the archival functions run
        inside the step's write transaction, and a first load there (seconds) would hold the database that
        long for every other session on it. False when there is no embedder (the functions say so when called)."""
        if not self._embedder_warm:
            try:
                self.embed(["warm-up"])
            except FunctionError as exc:
                log.info("agent %s: no embedder (%s)", self.name, exc)
                return False
            self._embedder_warm = True
        return True

    def embed(self, texts: list[str]) -> Any:
        embedder = self._get_embedder()
        try:
            return embedder.embed(texts)
        except EmbeddingError as exc:
            raise FunctionError(f"archival memory is unavailable: {exc}") from exc

    def embedding_chunks(self, text: str) -> list[str]:
        """``text`` as passages the embedder reads whole: itself when it fits, else chunks."""
        plan = chunking_for(self._get_embedder())
        return [text] if plan["count_tokens"](text) <= plan["max_tokens"] else chunk_text(text, **plan)

    def pause_heartbeats(self, minutes: int) -> str:
        if self.limits.heartbeat_minutes is None:
            return "Timed heartbeats are off in this session; there is nothing to pause."
        until = datetime.now(UTC).timestamp() + minutes * 60
        self.state.heartbeats_paused_until = until
        return f"Paused timed heartbeats for {minutes} minutes." if minutes else "Timed heartbeats resumed."

    def next_heartbeat_at(self) -> float | None:
        """When (``time.time()``) the next timed heartbeat is due: ``heartbeat_minutes`` after the last
        chain ended, or when a pause ends if that is later; None when timed heartbeats are off."""
        if self.limits.heartbeat_minutes is None:
            return None
        due = self._last_activity + self.limits.heartbeat_minutes * 60
        paused = self.state.heartbeats_paused_until
        return max(due, paused) if paused is not None else due

    def timed_heartbeat(self) -> TurnResult:
        """Wake the agent without a user message (``next_heartbeat_at`` says when)."""
        idle = round(time.time() - self._last_activity)
        silence = f"{idle} seconds" if idle < 120 else f"{idle // 60} minutes"
        return self.send_event(events.heartbeat(f"{events.HEARTBEAT_TIMED}: no message for {silence}"))

    @property
    def pending_message(self) -> str | None:
        """A user message that was accepted but never answered (the step failed or the process died)."""
        return self.state.pending_message

    @property
    def pending_messages(self) -> list[str]:
        """Every unanswered user message, oldest first: a message typed after an interrupted one does not
        replace it; the next step reads both."""
        return self.state.pending_messages

    def replace_memory_block(self, name: str, text: str) -> None:
        """Replace the whole text of core memory block ``name`` (a person's edit, such as the server's memory
        endpoint, not the model's) and save it at once. The prompt's memory section shows it from the next
        step. Raises ``MemoryEditError`` for an unknown block or text over the limit, and
        ``ContextOverflowError`` when the context window could not hold the prompt with it; either way
        nothing changes."""
        before, shown = dict(self.core_memory.blocks), self.state.core_memory_shown
        try:
            self.core_memory.set(name, text)
            self.check_window()
            with self.storage.transaction():
                self._show_current_memory()  # the prompt's memory section shows the edit from the next step
                self._save()
        except BaseException:
            self.core_memory.blocks, self.state.core_memory_shown = before, shown
            self._sync_record()
            raise

    def context_messages(self) -> list[Message]:
        return list(self.messages)

    def render_prompt(self) -> str:
        """The whole prompt the next step would send (system text, function docs, core memory, history)."""
        return self._prompt([]).text

    def send(self, text: str) -> TurnResult:
        """The user says ``text``; run the chain of steps it triggers. A chain that ends with nothing said
        to the user ends with one ``alert`` saying so and why (``/retry`` resends the message)."""
        unanswered = self.pending_messages
        if unanswered and unanswered[-1] == text:  # /retry of the pending message
            unanswered.pop()
        self._set_pending(text, earlier=unanswered)
        self._recall_only = []
        inputs: list[Message] = []
        notices: list[AgentEvent] = []
        for said in [*unanswered, text]:
            message, notice = self._fitted_message(said)
            inputs.append(message)
            if notice is not None:
                notices.append(notice)
        return self._chain(inputs, expect_reply=True, notices=notices)

    def send_event(self, content: str) -> TurnResult:
        """Deliver an event (a login, a heartbeat, a system alert) as the input of a chain."""
        return self._chain([Message(role="user", content=content)])

    def retry_pending(self) -> TurnResult | None:
        pending = self.pending_message
        return self.send(pending) if pending is not None else None

    def _chain(self, inputs: list[Message], *, expect_reply: bool = False, notices: Sequence[AgentEvent] = ()) -> TurnResult:
        self._answering = expect_reply
        try:
            result = self._run_chain(inputs, notices)
            if expect_reply and not result.answered and result.stopped_by != "invalid_output":
                self._reply_step(result)
        finally:
            self._last_activity = time.time()
        if result.stopped_by in ("failures", "chain_limit") and (result.answered or not expect_reply):
            self._emit(result, AgentEvent("alert", f"{result.stop_detail}; waiting for you"))
        elif expect_reply and not result.answered and result.stopped_by != "invalid_output":  # that one has its error
            why = result.stop_detail or "it ended its turn without send_message"
            self._emit(result, AgentEvent("alert", NO_REPLY.format(why=why), data={"reason": "no_reply"}))
        return result

    def _run_chain(self, inputs: list[Message], notices: Sequence[AgentEvent] = ()) -> TurnResult:
        result = TurnResult()
        for notice in notices:
            self._emit(result, notice)
        previous: FunctionCall | None = None
        failures = 0
        while True:
            outcome = self._step(inputs, result, previous)
            previous = outcome.call
            result.steps += 1
            failures = failures + 1 if outcome.failed else 0
            if outcome.stopped_by == "repeat":
                result.stopped_by, result.stop_detail = "repeat", "it repeated its last call"
            elif outcome.stopped_by is not None:
                result.stopped_by = outcome.stopped_by
            if outcome.heartbeat is None:
                return result
            if failures >= self.limits.max_failures:
                # A failed call earns a heartbeat so the model can correct itself; one that keeps failing
                # (small models retry a refused edit in variations) only burns the user's time.
                result.stopped_by, result.stop_detail = "failures", f"{failures} failed calls in a row"
                return result
            if result.steps >= self.limits.max_chain:
                result.stopped_by, result.stop_detail = "chain_limit", f"stopped after {result.steps} chained steps (the limit)"
                return result
            reached("chain_next")
            inputs = [Message(role="user", content=events.heartbeat(outcome.heartbeat))]

    def _reply_step(self, result: TurnResult) -> None:
        """The chain ended with nothing said to the user (the model handed control back after another call, or
        a guard stopped it): one more step, under a grammar that admits only ``send_message``, so that a user
        message gets an answer. What the model says is still its own. Off with ``Limits.reply_step``, and
        without a grammar (there is nothing to enforce it with)."""
        if not self.limits.reply_step or self._reply_constraint is None:
            return
        inputs = [Message(role="user", content=events.heartbeat(REPLY_NOW))]
        outcome = self._step(inputs, result, constraint=self._reply_constraint)
        result.steps += 1
        if outcome.stopped_by == "invalid_output":
            result.stopped_by = "invalid_output"  # its error says so already
        result.reply_step = result.answered

    def _step(
        self,
        inputs: list[Message],
        result: TurnResult,
        previous: FunctionCall | None = None,
        *,
        constraint: Constraint | None = None,
    ) -> _StepOutcome:
        inputs, prompt = self._fit_context(inputs, result)
        if constraint is None:
            call, raw = self._generate(inputs, result, prompt, self._constraint, self.schemas)
        else:  # the reply step: only send_message, whether or not the backend enforced the grammar
            call, raw = self._generate(
                inputs, result, prompt, constraint, tuple(s for s in self.schemas if s.name == REPLY_FUNCTION)
            )
        if call is None:
            # Nothing valid after the retries: keep the raw output in recall (nothing is lost) but out of
            # the context window, so the model does not imitate it; the inputs stay in context.
            kept = [Message(role="assistant", content=raw or "(empty output)")]
            self._commit(inputs, kept, in_context=list(inputs))
            self._emit(
                result,
                AgentEvent("error", "the model did not produce a valid function call; try again or /retry", data={"raw": raw}),
            )
            return _StepOutcome(None, None, stopped_by="invalid_output")

        self._emit_call(call, result)
        spec = self.functions.get(call.name)
        if spec is not None and spec.uses_archival and call != previous:
            self.warm_embedder()
        snapshot = copy.deepcopy(self.core_memory.blocks), self.state.model_copy(deep=True), list(self.messages)
        try:
            with self.storage.transaction():
                # A model that repeats its last call verbatim is looping (small models do): do not run
                # it again, say so, and hand control back instead of burning the rest of the chain.
                repeated = previous is not None and call == previous
                self._status(ACTIVITY.get(call.name, f"running {call.name}"))
                outcome_of: tuple[Literal["OK", "Failed"], str] = ("Failed", REPEATED) if repeated else self._execute(call)
                status, message = outcome_of
                reply = Message(role="assistant", function_call=call, content=self._thinking(raw))
                returned = Message(role="function", name=call.name, content=events.function_result(status, message))
                self._commit(inputs, [reply, returned], in_context=[*inputs, reply, returned])
        except BaseException:
            # The transaction rolled back; put the in-memory state back where the database is.
            self.core_memory.blocks, self.state, self.messages = snapshot
            raise
        self._emit(result, AgentEvent("result", message, call.name, {"status": status}))
        if repeated:
            return _StepOutcome(call, None, stopped_by="repeat")
        if status == "Failed":
            return _StepOutcome(call, events.HEARTBEAT_FAILED, failed=True)
        if call.arguments.get("request_heartbeat") is True:
            return _StepOutcome(call, events.HEARTBEAT_REQUESTED)
        return _StepOutcome(call, None)

    def _emit_call(self, call: FunctionCall, result: TurnResult) -> None:
        if call.inner_thoughts:
            self._emit(result, AgentEvent("thought", call.inner_thoughts))
        if call.name == "send_message":
            self._emit(result, AgentEvent("assistant", str(call.arguments.get("message", "")), call.name))
        else:
            shown = {k: v for k, v in call.arguments.items() if k != "inner_thoughts"}
            self._emit(result, AgentEvent("call", f"{call.name}({shown})", call.name, {"arguments": shown}))

    def _execute(self, call: FunctionCall) -> tuple[Literal["OK", "Failed"], str]:
        spec = self.functions.get(call.name)
        if spec is None:  # the parser already refuses these; never run what was not registered
            return "Failed", f"there is no function named {call.name!r}"
        arguments = {k: v for k, v in call.arguments.items() if k not in CONTROL_ARGS}
        before = dict(self.core_memory.blocks)
        try:
            value = spec.handler(self._handler_context, **arguments)
        except FunctionError as exc:  # a failure the function reports to the model
            self.core_memory.blocks = before
            return "Failed", str(exc)
        except Exception as exc:  # anything else is a bug in the function: it must not kill the agent
            # One line where warnings go (the terminal); the traceback only in the log (``--debug``).
            log.warning(
                "function %s failed with an unexpected %s: %s (a bug in the function; the model was told it failed)",
                call.name,
                type(exc).__name__,
                exc,
            )
            log.debug("traceback of function %s's failure", call.name, exc_info=True)
            self.core_memory.blocks = before
            return "Failed", INTERNAL_ERROR
        if self.core_memory.blocks != before:
            # The character limit alone cannot protect a small window: a core memory that leaves no room
            # for the conversation would stop the agent for good, so such an edit is refused like an
            # over-long one.
            fixed = self._fixed_tokens()
            if fixed > self._fixed_budget():
                self.core_memory.blocks = before
                return "Failed", (
                    f"edit refused: core memory would take the prompt to {fixed} tokens, leaving too little of the "
                    f"{self.context_window}-token context window for the conversation. Shorten a block with "
                    "core_memory_replace, or move details to archival memory."
                )
            # The prompt's core memory section is refreshed only when the context is rewritten, so the
            # result is where the model reads what an edited block now holds, verbatim (as
            # core_memory_replace needs it), whichever function made the edit.
            edited = [name for name, text in self.core_memory.blocks.items() if before.get(name) != text]
            shown = "".join(f"\nThe {name} block now reads:\n{self.core_memory.blocks[name]}" for name in edited)
            return "OK", ("" if value is None else str(value)) + shown
        return "OK", "None" if value is None else str(value)

    def _set_pending(self, text: str, *, earlier: list[str]) -> None:
        with self.storage.transaction():
            self.state.set_pending(text, earlier=earlier)
            self._save()

    def _commit(self, inputs: list[Message], produced: list[Message], *, in_context: list[Message]) -> None:
        """Store the step's messages and the agent's new state in one transaction."""
        with self.storage.transaction():
            if self._recall_only:
                self.storage.add_messages(self.name, self._recall_only)
            stored = self.storage.add_messages(self.name, [*inputs, *produced])
            by_identity = {id(m): s for m, s in zip([*inputs, *produced], stored, strict=True)}
            self.messages.extend(by_identity[id(m)] for m in in_context)
            if self._answering:  # a heartbeat's or a login's chain leaves the unanswered messages pending
                self.state.clear_pending()
            self._save()
            reached("step_commit")
        self._recall_only = []

    def retry(self) -> TurnResult | None:
        """Drop the last exchange from context and send the same user message again."""
        if self.pending_message is not None:
            return self.retry_pending()
        text = self.last_user_message()
        if text is None:
            return None
        self.pop(1)
        return self.send(text)
