"""The context window and its budget: what fits, the memory-pressure alert, summarizing the oldest
messages when the prompt would not fit, and a user message too long for the window read in part."""

from __future__ import annotations

import logging

from memgpt._faults import reached
from memgpt.agent import events
from memgpt.agent import summarize as summ
from memgpt.agent._generate import Generation
from memgpt.agent._results import AgentEvent, TurnResult
from memgpt.contract.types import CompletionRequest, Message, SamplingParams
from memgpt.contract.wrapper import Prompt
from memgpt.errors import BackendError, ContextOverflowError

log = logging.getLogger("memgpt.agent")

# Room a context window must leave for the conversation beyond the fixed prompt and the reply reserve.
MIN_CONVERSATION_TOKENS = 256


class Context(Generation):
    """Keeping the prompt within the context window."""

    _warned_pressure: bool
    _recall_only: list[Message]  # whole messages the next commit stores outside the context

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
