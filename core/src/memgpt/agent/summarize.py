"""Summarizing the oldest in-context messages when the context window fills.

The summary call is a plain conversation (``Wrapper.format_chat``) generated with *no* constraint: the
original MemGPT forced it through the function grammar and crashed. It must itself fit the window, so the
transcript is built newest-first within a token budget and cut where it would not fit. When the model
returns nothing usable, a plain note stands in: the messages stay in recall memory either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memgpt.agent import events
from memgpt.contract.types import Message

SUMMARY_SYSTEM = (
    "You summarize conversations for an AI assistant whose memory is limited. Write a short summary (at most "
    "120 words) in the first person, from the assistant's point of view, of the conversation below: what the "
    "user said and asked, what the assistant told the user, and any facts worth remembering. Plain text only."
)
#: Messages kept in context after a summary, however full the window is.
KEEP_LAST = 4
#: Share of the in-context messages summarized at a time.
FRACTION = 0.75


def transcript_line(message: Message) -> str | None:
    """How a message reads in a summary transcript; None for messages with nothing to say."""
    if message.role == "assistant":
        call = message.function_call
        if call is None:
            return f"assistant: {message.content}" if message.content else None
        said = call.arguments.get("message") if call.name == "send_message" else None
        thought = call.inner_thoughts
        if said:
            return f"assistant (to the user): {said}"
        return f"assistant (called {call.name}{f', thinking: {thought}' if thought else ''})"
    if message.role == "function":
        return f"result of {message.name}: {events.shown_text(message.content)}"[:400]
    event = events.parse(message.content)
    if event is None:
        return f"{message.role}: {message.content}" if message.content else None
    if event.kind == events.USER_MESSAGE:
        return f"user: {event.text or ''}"
    if event.kind == events.SYSTEM_ALERT:
        return f"note: {event.text or ''}"
    return None  # logins and heartbeats carry nothing worth summarizing


def cutoff(messages: Sequence[Message], fraction: float = FRACTION, keep_last: int = KEEP_LAST) -> int:
    """How many of the oldest messages to summarize: about ``fraction`` of them, never the last
    ``keep_last``, and never splitting a call from its result (the first kept message must not be a
    function result)."""
    n = len(messages)
    if n <= keep_last:
        return 0
    cut = min(max(1, int(n * fraction)), n - keep_last)
    while cut < n - 1 and messages[cut].role == "function":
        cut += 1
    while cut > 0 and messages[cut].role == "function":
        cut -= 1
    return cut


def build_transcript(messages: Sequence[Message], fits: Callable[[str], bool]) -> str:
    """The transcript of ``messages``, keeping as many of the newest lines as ``fits`` accepts."""
    lines = [line for line in (transcript_line(m) for m in messages) if line]
    kept: list[str] = []
    for line in reversed(lines):
        candidate = "\n".join([line, *kept])
        if not fits(candidate):
            break
        kept.insert(0, line)
    if len(kept) < len(lines):
        kept.insert(0, f"({len(lines) - len(kept)} earlier lines omitted)")
    return "\n".join(kept)


def summary_alert(summary: str, hidden: int, total_recall: int) -> str:
    text = (
        f"Note: {hidden} earlier messages were moved out of your context window to make room; "
        f"they remain in recall memory ({total_recall} messages in all), searchable with conversation_search. "
    )
    text += f"Summary of them: {summary}" if summary else "No summary could be made; search recall memory if you need them."
    return events.system_alert(text)
