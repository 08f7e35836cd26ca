"""The small JSON strings the model sees as events (the MemGPT convention), built and read here only.

User-side events travel as ``user`` messages: a user message, a login, a heartbeat, a system alert, each
``{"type": KIND, …, "time": …}``. Function results travel as ``function`` messages:
``{"status": "OK" | "Failed", "message": …, "time": …}``. Times are the user's local time, rendered the same
way everywhere so the model sees one format.

Every module that writes an event calls a builder here (``user_message``, ``login``, ``heartbeat``,
``system_alert``, ``function_result``); every module that reads one calls ``parse`` or one of the readers
built on it (``user_text``, ``shown_text``, ``spoken_text``), so the format is defined in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

#: The ``type`` of a user-side event.
EventType = Literal["user_message", "login", "heartbeat", "system_alert"]
#: ``Event.kind``: a user-side event's type, or a function's result.
EventKind = Literal["user_message", "login", "heartbeat", "system_alert", "function_result"]
USER_MESSAGE: EventType = "user_message"
LOGIN: EventType = "login"
HEARTBEAT: EventType = "heartbeat"
SYSTEM_ALERT: EventType = "system_alert"
FUNCTION_RESULT: EventKind = "function_result"
_EVENT_TYPES: dict[str, EventType] = {name: name for name in get_args(EventType)}

#: Function results are cut to this many characters before the model sees them.
MAX_RESULT_CHARS = 3000


def now_text(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as events show it: in its own zone when it has one, else local time."""
    if moment is None or moment.tzinfo is None:
        moment = (moment or datetime.now()).astimezone()
    return moment.strftime("%Y-%m-%d %I:%M:%S %p %Z%z")


def _dump(payload: dict[str, Any]) -> str:
    # ensure_ascii=False: the model sees the user's text as written (non-ASCII is not escaped away).
    return json.dumps(payload, ensure_ascii=False)


def user_message(text: str, moment: datetime | None = None) -> str:
    return _dump({"type": USER_MESSAGE, "message": text, "time": now_text(moment)})


def login(last_login: str | None = None, moment: datetime | None = None) -> str:
    return _dump({"type": LOGIN, "last_login": last_login or "Never (first login)", "time": now_text(moment)})


def heartbeat(reason: str, moment: datetime | None = None) -> str:
    return _dump({"type": HEARTBEAT, "reason": reason, "time": now_text(moment)})


def system_alert(message: str, moment: datetime | None = None) -> str:
    return _dump({"type": SYSTEM_ALERT, "message": message, "time": now_text(moment)})


def function_result(status: Literal["OK", "Failed"], message: Any, moment: datetime | None = None) -> str:
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [cut at {MAX_RESULT_CHARS} characters]"
    return _dump({"status": status, "message": text, "time": now_text(moment)})


def read(content: str | None) -> dict[str, Any] | None:
    """The JSON object in a stored message's content, or None when it is not one (``parse`` says which
    event it is)."""
    if not content:
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Event:
    """One event read back from a stored message. ``text`` is what it says: the user's message, the alert,
    the heartbeat's reason, the function's result (None for a login); ``status`` is a result's "OK" or
    "Failed"; ``time`` as the model read it; ``fields`` the whole JSON object."""

    kind: EventKind
    text: str | None
    status: str | None
    time: str | None
    fields: dict[str, Any]


def parse(content: str | None) -> Event | None:
    """The event in a stored message's content, or None when it is not one of ours."""
    data = read(content)
    if data is None:
        return None
    kind = data.get("type")
    time = data.get("time") if isinstance(data.get("time"), str) else None
    typed = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if typed is not None:
        said = data.get("reason" if typed == HEARTBEAT else "message")
        return Event(typed, said if isinstance(said, str) else None, None, time, data)
    status = data.get("status")
    if kind is None and isinstance(status, str) and "message" in data:
        message = data["message"]
        return Event(FUNCTION_RESULT, message if isinstance(message, str) else str(message), status, time, data)
    return None


def user_text(content: str | None) -> str | None:
    """The user's words when ``content`` is a ``user_message`` event, else None (another event, or not one)."""
    event = parse(content)
    return event.text or "" if event is not None and event.kind == USER_MESSAGE else None


def shown_text(content: str | None) -> str | None:
    """A stored message as one line for a person: what its event says (a user's message, an alert, a
    function's result), or the content itself when it is not an event."""
    event = parse(content)
    if event is None or event.kind not in (USER_MESSAGE, SYSTEM_ALERT, FUNCTION_RESULT) or event.text is None:
        return content  # not an event, or one without a message (a login, a heartbeat): shown as stored
    return event.text


def spoken_text(content: str) -> str | None:
    """What the user said in a stored ``user`` message, for recall search: a ``user_message`` event's text,
    plain text as it is; None for the other events (login, heartbeat, alerts) and for nothing at all."""
    stripped = content.strip()
    if not stripped:
        return None
    data = read(stripped) if stripped.startswith("{") else None
    if data is None:
        return stripped  # plain text, not wrapped in an event
    said = user_text(stripped)
    return said or None


HEARTBEAT_REQUESTED = "request_heartbeat == true"
HEARTBEAT_FAILED = "function call failed, returning control"
HEARTBEAT_TIMED = "timed heartbeat"
