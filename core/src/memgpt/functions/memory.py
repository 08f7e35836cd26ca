"""The MemGPT functions: talk to the user, edit core memory, search recall, insert into / search archival.

Each function's arguments are a pydantic model; its JSON schema (what prompts document and grammars
constrain) is derived from that model, so the schema and the validation can never disagree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memgpt.contract.types import FunctionSchema
from memgpt.errors import FunctionError
from memgpt.functions.spec import FunctionContext, FunctionSpec

PAGE_SIZE = 5
#: Longest text a model may put in one string argument (the grammar bounds strings to this too).
MAX_TEXT = 1200

INNER_THOUGHTS = {
    "type": "string",
    "description": "Your private inner monologue: reasoning about what to do next. The user never sees it.",
}
REQUEST_HEARTBEAT = {
    "type": "boolean",
    "description": "true to get control back right after this call (to chain another function); false to wait for the user.",
}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendMessage(_Args):
    message: str = Field(max_length=MAX_TEXT, description="The message to send to the user. Only this text is shown to them.")


class PauseHeartbeats(_Args):
    minutes: int = Field(ge=0, le=360, description="How many minutes to stay paused (at most 360).")


class CoreMemoryAppend(_Args):
    name: Literal["persona", "human"] = Field(description="Which block to append to: 'persona' (yourself) or 'human' (the user).")
    content: str = Field(min_length=1, max_length=MAX_TEXT, description="Text to append to the block; use short factual lines.")


class CoreMemoryReplace(_Args):
    name: Literal["persona", "human"] = Field(description="Which block to edit: 'persona' or 'human'.")
    old_content: str = Field(min_length=1, max_length=MAX_TEXT, description="Exact text currently in the block, to be replaced.")
    new_content: str = Field(max_length=MAX_TEXT, description="The new text; an empty string deletes old_content.")


class ConversationSearch(_Args):
    query: str = Field(min_length=1, max_length=200, description="Words to look for in past messages.")
    page: int = Field(default=0, ge=0, le=1000, description="Result page, starting at 0.")


class ConversationSearchDate(_Args):
    start_date: date = Field(description="First day to include, as YYYY-MM-DD.")
    end_date: date = Field(description="Last day to include (inclusive), as YYYY-MM-DD.")
    page: int = Field(default=0, ge=0, le=1000, description="Result page, starting at 0.")


class ArchivalMemoryInsert(_Args):
    content: str = Field(
        min_length=1, max_length=MAX_TEXT, description="Text to store in archival memory, phrased so a later search finds it."
    )


class ArchivalMemorySearch(_Args):
    query: str = Field(min_length=1, max_length=200, description="What to look for; the search is by meaning, not exact words.")
    page: int = Field(default=0, ge=0, le=1000, description="Result page, starting at 0.")


def schema_of(name: str, description: str, args: type[BaseModel], *, heartbeat: bool) -> FunctionSchema:
    """A clean JSON schema for ``args`` with ``inner_thoughts`` first and ``request_heartbeat`` last.

    Only the keywords a grammar needs survive (type, enum, format, bounds, description): pydantic's
    titles and ``anyOf`` wrappers would only cost prompt tokens.
    """
    raw = args.model_json_schema()
    properties: dict[str, Any] = {"inner_thoughts": INNER_THOUGHTS}
    for key, prop in raw.get("properties", {}).items():
        clean = {
            k: v
            for k, v in prop.items()
            if k in {"type", "enum", "format", "description", "maxLength", "minLength", "minimum", "maximum"}
        }
        if "const" in prop:
            clean["enum"] = [prop["const"]]
        if "enum" in clean and "type" not in clean:
            clean["type"] = "string"
        properties[key] = clean
    required = ["inner_thoughts", *raw.get("required", [])]
    if heartbeat:
        properties["request_heartbeat"] = REQUEST_HEARTBEAT
        required.append("request_heartbeat")
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return FunctionSchema(name=name, description=description, parameters=parameters)


def _validated(args: type[BaseModel], handler: Callable[[FunctionContext, Any], str]) -> Callable[..., str]:
    def run(agent: FunctionContext, **arguments: Any) -> str:
        try:
            parsed = args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise FunctionError(f"invalid arguments: {problems}") from None
        return handler(agent, parsed)

    return run


def _pages(total: int) -> int:
    return max(1, math.ceil(total / PAGE_SIZE))


def _describe_message(message: Any) -> str:
    """One line per recalled message: what was said, not the JSON wrapping it."""
    from memgpt.agent import events

    stamp = message.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    if message.role == "assistant" and message.function_call is not None:
        said = message.function_call.arguments.get("message")
        if said:
            return f"{stamp} assistant: {said}"
        return f"{stamp} assistant (thinking): {message.function_call.inner_thoughts or ''}"
    return f"{stamp} {message.role}: {events.shown_text(message.content)}"


def _send_message(agent: FunctionContext, args: SendMessage) -> str:
    return "Sent message successfully."


def _pause_heartbeats(agent: FunctionContext, args: PauseHeartbeats) -> str:
    return agent.pause_heartbeats(args.minutes)


def _edited(agent: FunctionContext, done: str, name: str) -> str:
    # The agent adds the block's new text to the result (memgpt.agent.agent: prompt layout).
    return f"{done} {name} ({len(agent.core_memory.blocks[name])}/{agent.core_memory.limit} characters)."


def _core_memory_append(agent: FunctionContext, args: CoreMemoryAppend) -> str:
    agent.core_memory.append(args.name, args.content)
    return _edited(agent, "Appended to", args.name)


def _core_memory_replace(agent: FunctionContext, args: CoreMemoryReplace) -> str:
    agent.core_memory.replace(args.name, args.old_content, args.new_content)
    return _edited(agent, "Replaced text in", args.name)


def _page_text(kind: str, page: int, total: int, lines: list[str]) -> str:
    if total == 0:
        return f"No {kind} results."
    if not lines:
        return f"No results on page {page}: there are {_pages(total)} pages (0 to {_pages(total) - 1})."
    head = f"Showing {len(lines)} of {total} {kind} results (page {page} of 0-{_pages(total) - 1}):"
    return json.dumps([head, *lines], ensure_ascii=False)


def _conversation_search(agent: FunctionContext, args: ConversationSearch) -> str:
    found, total = agent.search_recall(args.query, limit=PAGE_SIZE, offset=args.page * PAGE_SIZE)
    return _page_text("recall", args.page, total, [_describe_message(m) for m in found])


def _conversation_search_date(agent: FunctionContext, args: ConversationSearchDate) -> str:
    if args.end_date < args.start_date:
        raise FunctionError(f"end_date {args.end_date} is before start_date {args.start_date}")
    found, total = agent.recall_between(args.start_date, args.end_date, limit=PAGE_SIZE, offset=args.page * PAGE_SIZE)
    return _page_text("recall", args.page, total, [_describe_message(m) for m in found])


def _archival_memory_insert(agent: FunctionContext, args: ArchivalMemoryInsert) -> str:
    pieces = agent.archival_insert(args.content)
    return "Stored in archival memory." if pieces == 1 else f"Stored in archival memory as {pieces} overlapping passages."


def _archival_memory_search(agent: FunctionContext, args: ArchivalMemorySearch) -> str:
    if agent.archival_count() == 0:
        return "No archival results: archival memory is empty."
    found, total = agent.archival_search(args.query, limit=PAGE_SIZE, offset=args.page * PAGE_SIZE)
    lines = [f"{p.created_at.astimezone().strftime('%Y-%m-%d %H:%M')}: {p.text}" for p in found]
    return _page_text("archival", args.page, total, lines)


def _spec(
    name: str,
    description: str,
    args: type[BaseModel],
    handler: Callable[[Any, Any], str],
    *,
    heartbeat: bool = True,
    uses_archival: bool = False,
) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        schema=schema_of(name, description, args, heartbeat=heartbeat),
        handler=_validated(args, handler),
        uses_archival=uses_archival,
    )


FUNCTIONS: tuple[FunctionSpec, ...] = (
    _spec(
        "send_message",
        "Send a message to the user. This is the only way the user hears from you.",
        SendMessage,
        _send_message,
        heartbeat=False,
    ),
    _spec(
        "pause_heartbeats",
        "Stop timed heartbeats for a while (they wake you without a user message).",
        PauseHeartbeats,
        _pause_heartbeats,
        heartbeat=False,
    ),
    _spec(
        "core_memory_append",
        "Add a line to a block of your core memory (always in your prompt).",
        CoreMemoryAppend,
        _core_memory_append,
    ),
    _spec(
        "core_memory_replace",
        "Replace exact text in a block of your core memory with new text.",
        CoreMemoryReplace,
        _core_memory_replace,
    ),
    _spec(
        "conversation_search",
        "Search past messages of the whole conversation by words.",
        ConversationSearch,
        _conversation_search,
    ),
    _spec(
        "conversation_search_date",
        "List past messages from a date range (both days included).",
        ConversationSearchDate,
        _conversation_search_date,
    ),
    _spec(
        "archival_memory_insert",
        "Store text in archival memory, a long-term store outside your prompt.",
        ArchivalMemoryInsert,
        _archival_memory_insert,
        uses_archival=True,
    ),
    _spec(
        "archival_memory_search",
        "Search archival memory by meaning.",
        ArchivalMemorySearch,
        _archival_memory_search,
        uses_archival=True,
    ),
)
