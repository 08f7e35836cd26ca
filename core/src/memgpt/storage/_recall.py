"""What recall search indexes, and how a user's query becomes a safe FTS5 query.

Only the conversation is indexed: the text of the user's messages and what the agent said with
``send_message`` — taken out of the stored JSON, so a search for "message" does not match every event's
``"message"`` key. (MemGPT's recall search never found the assistant's turns; ours does.)
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

from memgpt.agent import events
from memgpt.contract.types import Message

_SPOKEN_FUNCTIONS = frozenset({"send_message"})
_WORD = re.compile(r"\w+", re.UNICODE)


def searchable_text(message: Message) -> str | None:
    """The words recall search should find this message by, or None when it is not conversation."""
    if message.role == "user":
        return _user_text(message.content or "")
    if message.role == "assistant" and message.function_call is not None:
        if message.function_call.name in _SPOKEN_FUNCTIONS:
            said = message.function_call.arguments.get("message")
            return said if isinstance(said, str) and said.strip() else None
    return None


def _user_text(content: str) -> str | None:
    return events.spoken_text(content)  # login, heartbeat, system alerts: not something the user said


def query_terms(query: str) -> list[str]:
    """The words of a free-text query, as FTS5 string literals (quotes doubled).

    Quoting every word means no user text can be FTS5 syntax: ``NOT``, ``"``, ``*``, ``col:`` and
    parentheses are all just words or are dropped with the punctuation.
    """
    return ['"' + word.replace('"', '""') + '"' for word in _WORD.findall(query)]


def all_terms(terms: list[str]) -> str:
    return " AND ".join(terms)


def any_term(terms: list[str]) -> str:
    return " OR ".join(terms)


def any_prefix(terms: list[str]) -> str:
    """Any word as a prefix: finds "pizza" for the fragment "pizz"."""
    return " OR ".join(term + "*" for term in terms)


def like_pattern(query: str) -> str:
    """A LIKE pattern matching ``query`` as a substring (``\\`` escapes the wildcards)."""
    escaped = query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def day_range(start: date, end: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``messages_between``'s bounds: [``start`` 00:00, the day after ``end`` 00:00) in ``tz``, so the whole end day
    is included; datetimes count by their date, and a reversed range means the same days."""
    if isinstance(start, datetime):
        start = start.date()
    if isinstance(end, datetime):
        end = end.date()
    if end < start:
        start, end = end, start
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
