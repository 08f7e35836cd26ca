"""The small JSON strings the model sees as events (the MemGPT convention).

User-side events travel as ``user`` messages: a user message, a login, a heartbeat, a system alert.
Function results travel as ``function`` messages. Times are the user's local time, rendered the same way
everywhere so the model sees one format.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

#: Function results are cut to this many characters before the model sees them.
MAX_RESULT_CHARS = 3000


def now_text(moment: datetime | None = None) -> str:
    moment = (moment or datetime.now().astimezone()).astimezone()
    return moment.strftime("%Y-%m-%d %I:%M:%S %p %Z%z")


def _dump(payload: dict[str, Any]) -> str:
    # ensure_ascii=False: the model sees the user's text as written (non-ASCII is not escaped away).
    return json.dumps(payload, ensure_ascii=False)


def user_message(text: str, moment: datetime | None = None) -> str:
    return _dump({"type": "user_message", "message": text, "time": now_text(moment)})


def login(last_login: str | None = None, moment: datetime | None = None) -> str:
    return _dump({"type": "login", "last_login": last_login or "Never (first login)", "time": now_text(moment)})


def heartbeat(reason: str, moment: datetime | None = None) -> str:
    return _dump({"type": "heartbeat", "reason": reason, "time": now_text(moment)})


def system_alert(message: str, moment: datetime | None = None) -> str:
    return _dump({"type": "system_alert", "message": message, "time": now_text(moment)})


def function_result(status: Literal["OK", "Failed"], message: Any, moment: datetime | None = None) -> str:
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [cut at {MAX_RESULT_CHARS} characters]"
    return _dump({"status": status, "message": text, "time": now_text(moment)})


def read(content: str | None) -> dict[str, Any] | None:
    """The event dict in a stored message's content, or None when it is not one of ours."""
    if not content:
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


HEARTBEAT_REQUESTED = "request_heartbeat == true"
HEARTBEAT_FAILED = "function call failed, returning control"
HEARTBEAT_TIMED = "timed heartbeat"
