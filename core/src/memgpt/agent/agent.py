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
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from memgpt._faults import reached
from memgpt.agent import events
from memgpt.agent import summarize as summ
from memgpt.agent.state import AgentState
from memgpt.contract.backend import Backend
from memgpt.contract.types import (
    CallShape,
    Completion,
    CompletionRequest,
    Constraint,
    FunctionCall,
    Message,
    SamplingParams,
    Usage,
)
from memgpt.contract.wrapper import Prompt, Wrapper
from memgpt.errors import (
    BackendError,
    ContextOverflowError,
    EmbeddingError,
    EmptyCompletion,
    FunctionError,
    GrammarError,
    ParseError,
)
from memgpt.functions.spec import FunctionSpec
from memgpt.memory.chunking import chunk_text, chunking_for
from memgpt.memory.core import CoreMemory
from memgpt.parsing import cut_off, split_thinking, validate_call
from memgpt.storage.base import AgentRecord, Storage

log = logging.getLogger("memgpt.agent")

EventKind = Literal["thought", "call", "assistant", "result", "alert", "error"]
# Keys of the stored state (``AgentState``), for readers of a stored record.
PENDING_KEY = "pending_message"
EARLIER_KEY = "pending_earlier"  # messages sent before the pending one that were never answered either
# Room a context window must leave for the conversation beyond the fixed prompt and the reply reserve.
MIN_CONVERSATION_TOKENS = 256
CONTROL_ARGS = ("inner_thoughts", "request_heartbeat")
REPEATED = "not run: this call is identical to your previous one. Do something else, or reply to the user with send_message."
NO_REPLY = "the agent did not reply ({why}); /retry, or rephrase"
REPLY_FUNCTION = "send_message"
REPLY_NOW = "the user is still waiting for your reply: answer them now with send_message"
#: The result the model reads when a function raised anything but a ``FunctionError`` (a bug, logged as one).
INTERNAL_ERROR = "function failed: internal error"
MEMORY_EDITS = frozenset({"core_memory_append", "core_memory_replace", "archival_memory_insert"})
SEARCHES = frozenset({"conversation_search", "conversation_search_date", "archival_memory_search"})
#: What the agent is doing while a function runs, for ``Agent.on_status`` (others: "running NAME").
ACTIVITY = {
    "archival_memory_search": "searching archival memory",
    "archival_memory_insert": "saving to archival memory",
    "conversation_search": "searching recall memory",
    "conversation_search_date": "searching recall memory",
}


@dataclass(frozen=True)
class AgentEvent:
    """Something the user interface shows: an inner thought, a call, a reply, a result, an alert, an error."""

    kind: EventKind
    text: str
    function: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "text": self.text}
        if self.function:
            out["function"] = self.function
        if self.data:
            out.update(self.data)
        return out


@dataclass(frozen=True)
class Limits:
    """The agent's bounds; every loop it runs is bounded by one of these."""

    max_tokens: int = 1024  # reserved for each model turn
    max_chain: int = 6  # steps one user message may trigger (heartbeats included)
    max_failures: int = 2  # failed calls in a row before control goes back to the user
    parse_retries: int = 2  # re-asks after output that is not a valid call
    warn_fraction: float = 0.75  # memory-pressure alert at this share of the window
    summary_tokens: int = 200
    temperature: float = 0.7
    heartbeat_minutes: float | None = None  # timed heartbeats: wake the agent after this long without a message
    reply_step: bool = True  # a user message the chain left unanswered gets one more step that can only reply


#: Why a chain stopped before the model handed control back itself (``TurnResult.stopped_by``).
StopReason = Literal["repeat", "failures", "chain_limit", "invalid_output"]


@dataclass
class TurnResult:
    """What one user message (or event) led to: the events shown, the steps run, tokens used."""

    events: list[AgentEvent] = field(default_factory=list)
    steps: int = 0
    usage: list[Usage] = field(default_factory=list)
    stopped_by: StopReason | None = None  # a guard ended the chain (None: the model ended it)
    stop_detail: str = ""  # what the guard saw, for the user
    reply_step: bool = False  # the reply came from the send_message-only step that closes an unanswered chain

    @property
    def replies(self) -> list[str]:
        return [e.text for e in self.events if e.kind == "assistant"]

    @property
    def answered(self) -> bool:
        """The user received a reply (a ``send_message``) in this turn."""
        return any(e.kind == "assistant" for e in self.events)

    def outcome(self) -> dict[str, Any]:
        """What the user got from this turn, beside what the mechanism guaranteed (for scripts and benches)."""
        calls = [e for e in self.events if e.kind in ("call", "assistant")]
        return {
            "answered": self.answered,
            "stopped_by": self.stopped_by,
            "reply_step": self.reply_step,
            "calls": len(calls),
            "thoughts": sum(e.kind == "thought" for e in self.events),
            "memory_edits": sum(e.function in MEMORY_EDITS for e in calls),
            "searches": sum(e.function in SEARCHES for e in calls),
        }


@dataclass
class _StepOutcome:
    call: FunctionCall | None
    heartbeat: str | None  # the reason to continue, or None to hand control back
    failed: bool = False
    stopped_by: StopReason | None = None  # a guard handed control back


class Agent:
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

    # ---- what function handlers use (memgpt.functions.spec.FunctionContext) ----

    def _get_embedder(self) -> Any:
        if self._embedder is None:
            if self._embedder_factory is None:
                raise FunctionError("archival memory is unavailable: no embedder is configured")
            try:
                self._embedder = self._embedder_factory()
            except EmbeddingError as exc:
                raise FunctionError(f"archival memory is unavailable: {exc}") from exc
        return self._embedder

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

    # ---- timed heartbeats ----

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

    # ---- state ----

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

    def shown_memory(self) -> CoreMemory:
        """Core memory as the top of the prompt shows it: as of the last rewrite of the context (set when
        the agent is built, so always present)."""
        return CoreMemory.from_dict(self.state.core_memory_shown or {}, limit=self.core_memory.limit)

    def _show_current_memory(self) -> None:
        """Bring the prompt's core memory section up to date (saved with the next ``_save``)."""
        self.state.core_memory_shown = self.core_memory.to_dict()

    def _make_constraint(
        self, build: Callable[[Sequence[Any], Any], Constraint] | None, schemas: Sequence[Any]
    ) -> Constraint | None:
        if not self.wrapper.uses_grammar or build is None:
            return None
        kinds = self.backend.capabilities.constraints
        if not kinds:
            log.warning(
                "wrapper %s wants a grammar but backend %s enforces none; parsing with repair",
                self.wrapper.name,
                self.backend.name,
            )
            return None
        full = build(schemas, self._shape())
        # Send only what the backend enforces (the grammar is built once per agent, not per call).
        return Constraint(
            gbnf=full.gbnf if "gbnf" in kinds else None,
            json_schema=full.json_schema if "json_schema" in kinds else None,
        )

    def _shape(self) -> CallShape:
        """The wrapper's call shape with strings bounded so that any call the grammar admits fits in the
        turn's ``max_tokens`` (a call cut off at the limit is the classic failure). When even the shortest
        calls cannot be guaranteed to fit, keep the wrapper's bounds: a cut call is then repaired or re-asked."""
        from memgpt.grammar.call import shape_for_budget

        try:
            return shape_for_budget(self.schemas, self.limits.max_tokens, self.wrapper.call_shape)
        except GrammarError:
            log.warning(
                "max_tokens %d cannot guarantee a complete call; strings keep the wrapper's bounds", self.limits.max_tokens
            )
            return self.wrapper.call_shape

    # ---- the public entry points ----

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

    def _fitted_message(self, text: str) -> tuple[Message, AgentEvent | None]:
        """The user message as the model reads it. One too long for the context window (more than half the
        room the fixed prompt and the reply reserve leave) is read as its beginning with a note, and kept
        whole in recall memory (stored with the step), where ``conversation_search`` finds it."""
        whole = Message(role="user", content=events.user_message(text))
        if 3 * len(whole.content or "") <= self.context_window // 8:
            return whole, None  # fits whatever the tokenizer (no token counts, which may be server requests)
        room = (self.context_window - self.limits.max_tokens - self._fixed_tokens()) // 2
        tokens = self.backend.count_tokens(whole.content or "")
        if tokens <= room or room <= 0:
            return whole, None
        note = (
            f"\n[the user's message is cut here: it is {len(text)} characters (about {tokens} tokens) and only about "
            f"{room} tokens fit; the whole message is in recall memory, find more of it with conversation_search]"
        )
        keep = len(text) * room // tokens
        while True:
            shown = Message(role="user", content=events.user_message(text[:keep] + note))
            if self.backend.count_tokens(shown.content or "") <= room or keep == 0:
                break
            keep = keep * 9 // 10
        self._recall_only.append(whole)
        notice = AgentEvent(
            "alert",
            f"your message is {len(text)} characters, about {tokens} tokens; this agent's {self.context_window}-token "
            f"context window has room for about {room} tokens of one message, so the agent reads its first {keep} "
            "characters. The whole message is kept in recall memory (the agent can search it). To have all of it "
            "read, send it in parts, or put long text in archival memory with `memgpt load`.",
            data={"reason": "message_too_long", "characters": len(text), "tokens": tokens, "limit_tokens": room},
        )
        return shown, notice

    def send_event(self, content: str) -> TurnResult:
        """Deliver an event (a login, a heartbeat, a system alert) as the input of a chain."""
        return self._chain([Message(role="user", content=content)])

    def retry_pending(self) -> TurnResult | None:
        pending = self.pending_message
        return self.send(pending) if pending is not None else None

    # ---- the loop ----

    def _status(self, what: str) -> None:
        if self.on_status is not None:
            self.on_status(what)

    def _emit(self, result: TurnResult, event: AgentEvent) -> None:
        result.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

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
            value = spec.handler(self, **arguments)
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

    # ---- generation ----

    def _prompt(
        self,
        inputs: Sequence[Message],
        extra: Sequence[Message] = (),
        *,
        history: Sequence[Message] | None = None,
        memory_shown: CoreMemory | None = None,
    ) -> Prompt:
        history = self.messages if history is None else history
        memory = Message(role="system", content=(memory_shown or self.shown_memory()).render())
        first = not any(m.role == "assistant" for m in history)
        return self.wrapper.format(self.system_prompt, [memory, *history, *inputs, *extra], self.schemas, first_message=first)

    def _generate(
        self, inputs: list[Message], result: TurnResult, first: Prompt, constraint: Constraint | None, schemas: Sequence[Any]
    ) -> tuple[FunctionCall | None, str]:
        """``first`` is the prompt ``_fit_context`` already rendered and measured for ``inputs``."""
        extra: list[Message] = []
        raw = ""
        for attempt in range(self.limits.parse_retries + 1):
            prompt = self._prompt(inputs, extra) if extra else first
            self._seed += 1
            request = CompletionRequest(
                prompt=prompt.text,
                stop=prompt.stop,
                max_tokens=self.limits.max_tokens,
                sampling=SamplingParams(temperature=self.limits.temperature + 0.15 * attempt, seed=self._seed),
                constraint=constraint,
            )
            self._status("generating" if attempt == 0 else f"generating (retry {attempt})")
            log.debug("step prompt (attempt %d, %d characters):\n%s", attempt + 1, len(prompt.text), prompt.text)
            completion = self._complete(request)
            result.usage.append(completion.usage)
            u = completion.usage
            log.debug(
                "raw output (finish %s, constrained by %s; tokens: prompt %s, completion %s, cached %s, evaluated %s, "
                "%.2f s):\n%s",
                completion.finish_reason, completion.constrained_by, u.prompt_tokens, u.completion_tokens,
                u.cached_tokens, u.evaluated_tokens, completion.seconds or 0.0, completion.text,
            )  # fmt: skip
            if constraint is not None and completion.constrained_by is None and not self._warned_unconstrained:
                self._warned_unconstrained = True
                self._emit(result, AgentEvent("alert", "the backend did not enforce the grammar; parsing with repair"))
            raw = prompt.prefill + completion.text
            try:
                call = self.wrapper.parse(completion.text, schemas, prompt)
                if completion.finish_reason == "length" and cut_off(raw):
                    # Closed by the parser, a cut call reads as complete: a message stopping mid-word.
                    raise ParseError("the output was cut off at the token limit before the call was complete", raw=raw)
                # Whatever the wrapper did, nothing runs that its function's schema refuses.
                return validate_call(call, schemas, self.wrapper.call_shape), raw
            except ParseError as exc:
                log.info("attempt %d: unparseable output (%s): %r", attempt + 1, exc, raw[:200])
                hint = "" if completion.finish_reason != "length" else " Your output was cut off: keep inner_thoughts short."
                extra = [
                    Message(
                        role="user",
                        content=events.system_alert(
                            f"Your last output was not a valid function call: {exc}.{hint} Reply with exactly one JSON function call."
                        ),
                    )
                ]
        return None, raw

    # ---- reasoning models: thinking before the call ----

    def _complete(self, request: CompletionRequest) -> Completion:
        """One completion. For a model that thinks (its wrapper's shape has a think block) on a backend that
        enforces JSON schema but no grammar, where the schema cannot admit free text before the call: the
        thinking first, unconstrained, stopped at its closing tag and bounded as the grammar bounds it; then
        the call under the schema, in a second request that continues the same prompt (prompt + thinking:
        the backend's prefix cache makes that cheap). One completion comes back, the thinking in its text."""
        constraint = request.constraint
        shape = self._shape()
        if not shape.thinks or constraint is None or constraint.gbnf is not None or constraint.json_schema is None:
            return self.backend.complete(request)  # a grammar does both at once (think? call), or nothing to enforce
        parts: list[Completion] = []
        thinking = ""
        if shape.max_think_chars:
            free = request.model_copy(
                update={
                    "prompt": request.prompt + shape.think_open,
                    "stop": (*request.stop, shape.think_close.strip()),
                    "max_tokens": shape.max_think_chars,
                    "constraint": None,
                }
            )
            try:
                parts.append(self.backend.complete(free))
                thinking = parts[0].text.split(shape.think_close.strip(), 1)[0][: shape.max_think_chars].rstrip()
            except EmptyCompletion:
                pass  # closed the block at once (or ended the turn): an empty thinking, and the call still comes
        block = shape.think_open + thinking + shape.think_close
        used = sum(p.usage.completion_tokens for p in parts)
        call = self.backend.complete(
            request.model_copy(update={"prompt": request.prompt + block, "max_tokens": max(request.max_tokens - used, 1)})
        )
        evaluated = [p.usage.evaluated_tokens for p in (*parts, call)]
        usage = Usage(
            prompt_tokens=call.usage.prompt_tokens,
            completion_tokens=used + call.usage.completion_tokens,
            cached_tokens=call.usage.cached_tokens,
            evaluated_tokens=None if None in evaluated else sum(e or 0 for e in evaluated),
            exact=all(p.usage.exact for p in (*parts, call)),
        )
        seconds = [p.seconds for p in (*parts, call)]
        return call.model_copy(
            update={
                "text": block + call.text,
                "usage": usage,
                "seconds": None if None in seconds else sum(x or 0.0 for x in seconds),
            }
        )

    def _thinking(self, raw: str) -> str | None:
        """The thinking before the call in ``raw``, kept with the call in recall (the stored assistant
        message's content, which no wrapper replays: prompts show the call alone)."""
        split = split_thinking(raw, self.wrapper.call_shape)
        return split[0] or None if split is not None else None

    def _answer(self, text: str) -> str:
        """A plain answer (the summary) without the thinking a reasoning model wrote before it."""
        shape = self.wrapper.call_shape
        if shape.thinks or text.lstrip().startswith("<think>"):
            _, closed, after = text.partition(shape.think_close.strip() if shape.thinks else "</think>")
            if closed and after.strip():
                return after.strip()
        return text.strip()

    # ---- context budget ----

    def _fixed_tokens(self) -> int:
        """Tokens of the prompt's fixed part (system prompt, function docs, core memory as it now is)."""
        return self._tokens(self._prompt([], history=(), memory_shown=self.core_memory))

    def _fixed_budget(self) -> int:
        """The most the fixed part may take: the window less the reply reserve and the least conversation."""
        return self.context_window - self.limits.max_tokens - MIN_CONVERSATION_TOKENS

    def check_window(self) -> None:
        """Raise ``ContextOverflowError`` when the context window cannot hold even the fixed part of the
        prompt (system prompt, function docs, core memory) plus the reply reserve: no conversation fits."""
        fixed = self._fixed_tokens()
        if fixed > self._fixed_budget():
            raise ContextOverflowError(
                f"context window {self.context_window} is too small for this agent: its system prompt, function docs "
                f"and core memory take {fixed} tokens and {self.limits.max_tokens} are reserved for each reply, so at "
                f"least {fixed + self.limits.max_tokens + MIN_CONVERSATION_TOKENS} are needed; raise --context-window "
                "(the model's own limit permitting) or lower --max-tokens"
            )

    def _tokens(self, prompt: Prompt) -> int:
        return self.backend.count_tokens(prompt.text)

    def _fit_context(self, inputs: list[Message], result: TurnResult) -> tuple[list[Message], Prompt]:
        """The inputs (plus a memory-pressure alert when due) and the prompt they render to, which fits."""
        budget = self.context_window - self.limits.max_tokens
        prompt = self._prompt(inputs)
        used = self._tokens(prompt)
        if used > budget:
            # Each round moves about 3/4 of the movable messages out; a few rounds reach the floor (the last
            # KEEP_LAST messages) from any history length. When even the floor does not fit (a long message among
            # the last few, kept whole in recall anyway), the last messages go too, or no later turn could run.
            for keep_last in (summ.KEEP_LAST, 0):
                for _ in range(4):
                    if not self._summarize(result, keep_last=keep_last):
                        break
                    prompt = self._prompt(inputs)
                    used = self._tokens(prompt)
                    if used <= budget:
                        break
                if used <= budget:
                    break
            if used > budget:
                self.check_window()
                raise ContextOverflowError(
                    f"the prompt needs {used} tokens but only {budget} fit (context window {self.context_window} minus "
                    f"{self.limits.max_tokens} reserved for the reply): raise --context-window or shorten core memory"
                )
            self._warned_pressure = False
        elif used > self.limits.warn_fraction * self.context_window and not self._warned_pressure:
            self._warned_pressure = True
            alert = events.system_alert(
                "Warning: the conversation history will soon reach the context window limit and older messages "
                "will be summarized. Save anything important from the recent conversation to core or archival memory now."
            )
            self._emit(
                result,
                AgentEvent("alert", f"memory pressure: context window is over {int(self.limits.warn_fraction * 100)}% full"),
            )
            inputs = [*inputs, Message(role="user", content=alert)]
            prompt = self._prompt(inputs)
        return inputs, prompt

    def summarize(self) -> TurnResult:
        """Summarize the oldest messages now (``/summarize``)."""
        result = TurnResult()
        self._summarize(result)
        return result

    def _summarize(self, result: TurnResult, keep_last: int = summ.KEEP_LAST) -> bool:
        """Move the oldest messages out of context behind a summary (never the last ``keep_last``); False if
        nothing could move."""
        cut = summ.cutoff(self.messages, keep_last=keep_last)
        if cut == 0:
            return False
        old, kept = self.messages[:cut], self.messages[cut:]
        window = self.context_window - self.limits.summary_tokens

        def fits(transcript: str) -> bool:
            return self._tokens(self.wrapper.format_chat(summ.SUMMARY_SYSTEM, [("user", transcript)])) <= window

        self._status("summarizing older messages")
        transcript = summ.build_transcript(old, fits)
        summary = ""
        try:
            prompt = self.wrapper.format_chat(summ.SUMMARY_SYSTEM, [("user", transcript)])
            completion = self.backend.complete(
                CompletionRequest(
                    prompt=prompt.text,
                    stop=prompt.stop,
                    max_tokens=self.limits.summary_tokens,
                    sampling=SamplingParams(temperature=0.3),
                )
            )
            result.usage.append(completion.usage)
            summary = self._answer(completion.text)
        except BackendError as exc:
            log.warning("summary call failed (%s); moving messages out of context without a summary", exc)
        note = Message(role="user", content=summ.summary_alert(summary, len(old), self.storage.count_messages(self.name)))
        with self.storage.transaction():
            stored = self.storage.add_messages(self.name, [note])
            self.messages = [*stored, *kept]
            self._show_current_memory()  # the context after the summary is re-evaluated anyway
            self._save()
            reached("summary_commit")
        self._emit(
            result, AgentEvent("alert", f"summarized {len(old)} older messages to free context", data={"summary": summary})
        )
        return True

    # ---- persistence ----

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

    def _sync_record(self) -> None:
        """``record`` as the agent's state, memory and context window now are."""
        self.record.settings = self.state.dump()
        self.record.core_memory = self.core_memory.to_dict()
        self.record.in_context = [m.id for m in self.messages if m.id is not None]

    def _save(self) -> None:
        self._sync_record()
        self.record.updated_at = datetime.now(UTC)
        self.storage.save_agent(self.record)

    # ---- editing the history (slash commands) ----

    def pop(self, n: int = 1) -> int:
        """Remove the last ``n`` exchanges (a user input and everything after it) from the context window.
        They stay in recall memory."""
        removed = 0
        with self.storage.transaction():
            for _ in range(n):
                starts = [i for i, m in enumerate(self.messages) if m.role == "user" and events.user_text(m.content) is not None]
                if not starts:
                    break
                removed += len(self.messages) - starts[-1]
                self.messages = self.messages[: starts[-1]]
            if removed:
                # Edits made in the removed exchanges stay made; their results, which showed them, are gone.
                self._show_current_memory()
            self._save()
        return removed

    def last_user_message(self) -> str | None:
        for m in reversed(self.messages):
            said = events.user_text(m.content) if m.role == "user" else None
            if said is not None:
                return said
        return None

    def retry(self) -> TurnResult | None:
        """Drop the last exchange from context and send the same user message again."""
        if self.pending_message is not None:
            return self.retry_pending()
        text = self.last_user_message()
        if text is None:
            return None
        self.pop(1)
        return self.send(text)

    def rethink(self, thoughts: str) -> bool:
        """Replace the inner thoughts of the agent's last call (``/rethink``)."""
        for i in range(len(self.messages) - 1, -1, -1):
            m = self.messages[i]
            if m.role == "assistant" and m.function_call is not None:
                arguments = {**m.function_call.arguments, "inner_thoughts": thoughts}
                edited = m.model_copy(
                    update={"function_call": FunctionCall(name=m.function_call.name, arguments=arguments), "id": None}
                )
                with self.storage.transaction():
                    (stored,) = self.storage.add_messages(self.name, [edited])
                    self.messages[i] = stored
                    self._save()
                return True
        return False
