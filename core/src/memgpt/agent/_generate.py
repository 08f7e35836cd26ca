"""Generation: the prompt, the constraint, one completion (two for a thinking model on a JSON-schema
backend) and its parse into a validated call, re-asked while it is not one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from memgpt.agent import events
from memgpt.agent._base import AgentBase
from memgpt.agent._results import AgentEvent, TurnResult
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
from memgpt.contract.wrapper import Prompt
from memgpt.errors import EmptyCompletion, GrammarError, ParseError
from memgpt.memory.core import CoreMemory
from memgpt.parsing import cut_off, split_thinking, validate_call

log = logging.getLogger("memgpt.agent")


class Generation(AgentBase):
    """How the agent asks its model for one call."""

    _seed: int
    _warned_unconstrained: bool

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
