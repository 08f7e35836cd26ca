"""The HTTP API of ``memgpt server`` (FastAPI): agents, their turns, memory, and an OpenAI-compatible chat
endpoint. Every error is an OpenAI-style body ``{"error": {"message", "type", "code"}}`` with one line of
text. The rules an agent lives by (one chain at a time, the session lock) are ``memgpt_server.host``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memgpt.agent.agent import TurnResult
from memgpt.errors import BackendError, BackendTimeout, ConfigError, MemGPTError, UnknownNameError
from memgpt.session import AGENT_MODEL_KEYS, AgentOptions, new_agent_name
from memgpt_server.host import AgentInUse, AgentNotFound, Host, NoCapacity, Turn, check_name, pending_of

#: Longest user message accepted, in characters (a request body is also bounded in bytes: ``max_body``).
MAX_MESSAGE_CHARS = 16_000
DEFAULT_MAX_BODY = 1 << 20
#: Largest document ``POST /v1/agents/{name}/documents`` takes, in bytes (``--max-upload``).
DEFAULT_MAX_UPLOAD = 10 << 20
#: Chunks embedded and stored per transaction when a document is loaded (as ``memgpt load``).
LOAD_BATCH = 32
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def error_body(message: str, kind: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}, **extra}


# ---- request bodies ----


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelOverrides(_Body):
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    wrapper: str | None = None
    context_window: int | None = Field(default=None, ge=256)
    max_tokens: int | None = Field(default=None, ge=16)


class CreateAgent(_Body):
    name: str | None = Field(default=None, max_length=64)
    persona: str | None = Field(default=None, max_length=200)
    human: str | None = Field(default=None, max_length=200)
    preset: str | None = Field(default=None, max_length=200)
    model: ModelOverrides = Field(default_factory=ModelOverrides)


class SendMessage(_Body):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    stream: bool = False


class Retry(_Body):
    stream: bool = False


class BlockText(_Body):
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class ArchivalText(_Body):
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """OpenAI's chat request; fields this server does not use (temperature, ...) are accepted and ignored:
    the agent's own settings decide."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=64)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False


# ---- what goes out ----


def _usage(result: TurnResult | None) -> dict[str, int]:
    usage = result.usage if result is not None else []
    prompt = sum(u.prompt_tokens for u in usage)
    completion = sum(u.completion_tokens for u in usage)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def turn_summary(result: TurnResult) -> dict[str, Any]:
    return {"type": "turn", "steps": result.steps, **result.outcome(), "usage": _usage(result)}


def _message_json(message: Any) -> dict[str, Any]:
    from memgpt.agent import events

    out: dict[str, Any] = {"id": message.id, "role": message.role, "created_at": message.created_at.isoformat()}
    call = message.function_call
    if call is not None:
        out["function"] = call.name
        out["arguments"] = call.arguments
        said = call.arguments.get("message") if call.name == "send_message" else None
        out["text"] = said if isinstance(said, str) else None
    else:
        out["text"] = events.shown_text(message.content) if message.role in ("user", "function") else message.content
        if message.name:
            out["function"] = message.name
    return out


def agent_json(record: Any, storage: Any, host: Host) -> dict[str, Any]:
    from memgpt.agent.state import AgentState

    state = AgentState.load(record.settings)
    return {
        "name": record.name,
        "preset": state.preset,
        "persona": state.persona,
        "human": state.human,
        "model": {key: state.model.get(key) for key in AGENT_MODEL_KEYS},
        "core_memory": {block: len(text) for block, text in record.core_memory.items()},
        "messages": storage.count_messages(record.name),
        "in_context": len(record.in_context),
        "passages": storage.count_passages(record.name),
        "pending": state.pending_messages,
        "open": host.is_open(record.name),
        "busy": host.busy(record.name),
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def _failure(exc: BaseException) -> ApiError:
    """A turn's exception as the error the client sees (one line)."""
    if isinstance(exc, (AgentInUse, AgentNotFound, NoCapacity, ApiError)):
        return _api_error(exc)
    if isinstance(exc, BackendTimeout):
        return ApiError(504, str(exc), "backend_timeout")
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc), "backend_error")
    if isinstance(exc, MemGPTError):
        return ApiError(500, str(exc), "agent_error")
    return ApiError(500, f"internal error ({type(exc).__name__}: {exc})", "internal_error")


def _turn_failure(host: Host, name: str, exc: BaseException, text: str | None) -> tuple[ApiError, list[str]]:
    """A failed turn's error, saying whether the message was kept (pending in storage) or not taken at all,
    and what is pending now."""
    failure = _failure(exc)
    pending: list[str] = []
    stored = False
    try:
        pending = pending_of(host.record(name).settings)
        if text is not None and text not in pending:
            with host.storage() as storage:
                found, _ = storage.search_messages(name, text, limit=20)
            stored = any(_message_json(m).get("text") == text for m in found if m.role == "user")
    except Exception:  # the storage itself failing: nothing more can be said
        pass
    if failure.status >= 500:
        if (text in pending) if text is not None else bool(pending):
            failure.message += f" (the message is kept: POST /v1/agents/{name}/retry sends it again)"
        elif stored:
            failure.message += (
                f" (the message was taken: the steps before the failure are stored, see GET /v1/agents/{name}/recall)"
            )
        else:
            failure.message += " (the message was not stored: send it again)"
    return failure, pending


def _api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AgentNotFound):
        return ApiError(404, f"no agent named {exc.args[0]!r}", "not_found", "agent_not_found")
    if isinstance(exc, AgentInUse):
        return ApiError(409, str(exc), "conflict", "agent_busy")
    if isinstance(exc, NoCapacity):
        return ApiError(503, str(exc), "unavailable", "no_capacity")
    if isinstance(exc, FileExistsError):
        return ApiError(409, f"an agent named {exc.args[0]!r} exists already", "conflict", "agent_exists")
    if isinstance(exc, (ConfigError, UnknownNameError)):
        return ApiError(400, str(exc).strip("\"'"), "invalid_request_error")
    return _failure(exc)


# ---- middleware: the API key and the body size ----


class Guard:
    """Refuses a request without the API key (when one is set; compared in constant time) and a request
    body over ``max_body`` bytes, before the application sees either."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body: int, max_upload: int = DEFAULT_MAX_UPLOAD) -> None:
        self.app = app
        self.key = api_key.encode("utf-8") if api_key else None
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.key is not None and scope["path"] not in OPEN_PATHS and not self._authorized(headers):
            await self._refuse(send, 401, "missing or wrong API key: send `Authorization: Bearer KEY`", "authentication_error")
            return
        limit = self.max_upload if scope["path"].endswith("/documents") else self.max_body
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await self._refuse(send, 400, "bad Content-Length header", "invalid_request_error")
                return
            if declared > limit:
                await self._refuse(send, 413, f"request body over {limit} bytes", "invalid_request_error")
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read the body here, up to the limit, and replay it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, 413, f"request body over {limit} bytes", "invalid_request_error")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[str, bytes]) -> bool:
        assert self.key is not None
        given = headers.get("authorization", b"")
        if given[:7].lower() == b"bearer ":
            given = given[7:].strip()
        else:
            given = headers.get("x-api-key", b"")
        return hmac.compare_digest(given, self.key)

    @staticmethod
    async def _refuse(send: Send, status: int, message: str, kind: str) -> None:
        body = json.dumps(error_body(message, kind)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# ---- turns, as JSON or as server-sent events ----

_DONE = object()


class TurnStream:
    """A turn started on the host whose events arrive on this event loop as they happen."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.turn: Turn | None = None

    def sink(self, event: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def done(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, _DONE)

    async def start(self, host: Host, name: str, action: Callable[[Any], Any]) -> TurnStream:
        self.turn = await run_in_threadpool(host.start_turn, name, action, self.sink, self.done)
        return self

    async def events(self) -> AsyncIterator[Any]:
        while True:
            item = await self.queue.get()
            if item is _DONE:
                return
            yield item

    def outcome(self) -> tuple[Any, BaseException | None]:
        assert self.turn is not None
        return self.turn.result, self.turn.error


def sse(payload: Any) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(
    host: Host, *, api_key: str | None = None, max_body: int = DEFAULT_MAX_BODY, max_upload: int = DEFAULT_MAX_UPLOAD
) -> Any:
    """The ASGI application: FastAPI behind the ``Guard``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def reap() -> None:
            while True:
                await asyncio.sleep(max(0.5, min(host.idle_close / 2, 10.0)))
                await run_in_threadpool(host.close_idle)

        task = asyncio.create_task(reap())
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(host.close_all)

    app = FastAPI(
        title="memgpt server",
        description="MemGPT agents over HTTP; `/v1/chat/completions` speaks OpenAI's protocol (`model` = an agent).",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.kind, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return JSONResponse(error_body(f"invalid request: {problems}", "invalid_request_error"), status_code=422)

    for kind in (AgentNotFound, AgentInUse, NoCapacity, FileExistsError, ConfigError, UnknownNameError, MemGPTError):

        async def mapped(request: Request, exc: Exception) -> JSONResponse:
            error = _api_error(exc)
            return JSONResponse(error_body(error.message, error.kind, error.code), status_code=error.status)

        app.add_exception_handler(kind, mapped)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "invalid_request_error"), status_code=400)

    async def blocking(function: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(function, *args)

    # ---- health and models ----

    @app.get("/health", tags=["server"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        def read() -> list[Any]:
            with host.storage() as storage:
                return list(storage.list_agents())

        records = await blocking(read)
        return {
            "object": "list",
            "data": [
                {"id": r.name, "object": "model", "created": int(r.created_at.timestamp()), "owned_by": "memgpt"}
                for r in sorted(records, key=lambda r: r.name)
            ],
        }

    # ---- agents ----

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents() -> dict[str, Any]:
        def read() -> list[dict[str, Any]]:
            with host.storage() as storage:
                records = sorted(storage.list_agents(), key=lambda r: r.updated_at, reverse=True)
                return [agent_json(r, storage, host) for r in records]

        return {"agents": await blocking(read)}

    def _show(name: str) -> dict[str, Any]:
        with host.storage() as storage:
            record = storage.get_agent(check_name(name))
            if record is None:
                raise AgentNotFound(name)
            return agent_json(record, storage, host)

    @app.post("/v1/agents", tags=["agents"], status_code=201)
    async def create_agent(body: CreateAgent) -> dict[str, Any]:
        name = check_name(body.name) if body.name else new_agent_name()
        options = AgentOptions(
            name=name, persona=body.persona, human=body.human, preset=body.preset, model=body.model.model_dump()
        )
        await blocking(host.create, options)
        return await blocking(_show, name)

    @app.get("/v1/agents/{name}", tags=["agents"])
    async def show_agent(name: str) -> dict[str, Any]:
        return await blocking(_show, name)

    @app.delete("/v1/agents/{name}", tags=["agents"])
    async def delete_agent(name: str) -> dict[str, Any]:
        await blocking(host.delete, check_name(name))
        return {"deleted": name}

    # ---- turns ----

    async def run_turn(name: str, action: Callable[[Any], TurnResult | None], stream: bool, text: str | None = None) -> Any:
        """``text``: the message sent (None for a retry), to say whether a failed turn kept it."""
        turn = await TurnStream().start(host, check_name(name), action)
        if stream:

            async def events() -> AsyncIterator[bytes]:
                async for event in turn.events():
                    yield sse(event.to_json())
                result, error = turn.outcome()
                if error is not None:
                    failure, pending = await blocking(_turn_failure, host, name, error, text)
                    yield sse({"type": "error", "text": failure.message, "status": failure.status, "pending": pending})
                elif result is not None:
                    yield sse(turn_summary(result))
                yield sse("[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
        collected = [event.to_json() async for event in turn.events()]
        result, error = turn.outcome()
        if error is not None:
            failure, pending = await blocking(_turn_failure, host, name, error, text)
            return JSONResponse(
                error_body(failure.message, failure.kind, failure.code, events=collected, pending=pending),
                status_code=failure.status,
            )
        assert result is not None
        return {"agent": name, "events": collected, "replies": result.replies, "turn": turn_summary(result)}

    @app.post("/v1/agents/{name}/messages", tags=["turns"])
    async def send_message(name: str, body: SendMessage) -> Any:
        """Send a user message; the turn's events (thought, call, assistant, result, alert, error), then a
        ``turn`` summary. ``stream: true``: the same as server-sent events, as they happen, then ``[DONE]``.
        A busy agent answers 409 at once (nothing is queued)."""
        text = body.message
        return await run_turn(name, lambda agent: agent.send(text), body.stream, text)

    @app.get("/v1/agents/{name}/pending", tags=["turns"])
    async def pending(name: str) -> dict[str, Any]:
        record = await blocking(host.record, name)
        return {"pending": pending_of(record.settings)}

    @app.post("/v1/agents/{name}/retry", tags=["turns"])
    async def retry(name: str, body: Retry | None = None) -> Any:
        """Send the unanswered messages again (as ``/retry`` in ``memgpt run``); 409 when there are none."""
        record = await blocking(host.record, name)
        if not pending_of(record.settings):
            raise ApiError(409, f"agent {name!r} has no pending message", "conflict", "nothing_pending")
        return await run_turn(name, lambda agent: agent.retry_pending(), bool(body and body.stream))

    # ---- memory ----

    @app.get("/v1/agents/{name}/memory", tags=["memory"])
    async def core_memory(name: str) -> dict[str, Any]:
        record = await blocking(host.record, name)
        return {"blocks": dict(record.core_memory)}

    @app.put("/v1/agents/{name}/memory/{block}", tags=["memory"])
    async def edit_block(name: str, block: str, body: BlockText) -> dict[str, Any]:
        """Replace the text of a core memory block; the agent sees the new text from its next step."""

        def edit(agent: Any) -> dict[str, Any]:
            from memgpt.errors import ContextOverflowError
            from memgpt.memory.core import MemoryEditError

            memory = agent.core_memory
            if block not in memory.blocks:
                raise ApiError(
                    404, f"no core memory block {block[:40]!r}; the blocks are: {', '.join(memory.blocks)}", "not_found"
                )
            try:
                agent.replace_memory_block(block, body.text)
            except MemoryEditError as exc:
                raise ApiError(422, str(exc)) from None
            except ContextOverflowError as exc:
                raise ApiError(422, f"edit refused: {exc}") from None
            return {"blocks": dict(memory.blocks)}

        return await blocking(host.with_agent, check_name(name), edit)

    @app.get("/v1/agents/{name}/recall", tags=["memory"])
    async def recall(
        name: str,
        query: str | None = Query(default=None, max_length=200, description="words to look for"),
        start: date | None = Query(default=None, description="first day, YYYY-MM-DD (local time)"),
        end: date | None = Query(default=None, description="last day, inclusive"),
        limit: int = Query(default=10, ge=1, le=100),
        offset: int = Query(default=0, ge=0),
    ) -> dict[str, Any]:
        """Search the conversation (recall memory) by text, or by a date range; neither: the latest messages."""

        def read() -> dict[str, Any]:
            check_name(name)
            with host.storage() as storage:
                if storage.get_agent(name) is None:
                    raise AgentNotFound(name)
                if query:
                    found, total = storage.search_messages(name, query, limit=limit, offset=offset)
                elif start or end:
                    local = datetime.now().astimezone().tzinfo  # the days the model and the user see
                    found, total = storage.messages_between(
                        name, start or end, end or start, limit=limit, offset=offset, tz=local
                    )
                else:
                    total = storage.count_messages(name)
                    found = storage.recent_messages(name, limit)
                return {"total": total, "messages": [_message_json(m) for m in found]}

        return await blocking(read)

    @app.get("/v1/agents/{name}/archival", tags=["memory"])
    async def archival_search(
        name: str,
        query: str = Query(min_length=1, max_length=200, description="what to look for (by meaning)"),
        limit: int = Query(default=10, ge=1, le=100),
        offset: int = Query(default=0, ge=0),
    ) -> dict[str, Any]:
        def search(agent: Any) -> dict[str, Any]:
            if agent.storage.count_passages(agent.name) == 0:
                return {"total": 0, "passages": []}
            found, total = agent.storage.search_passages(agent.name, agent.embed([query])[0], limit=limit, offset=offset)
            return {
                "total": total,
                "passages": [
                    {"id": p.id, "text": p.text, "score": p.score, "created_at": p.created_at.isoformat()} for p in found
                ],
            }

        return await blocking(host.with_agent, check_name(name), search)

    @app.post("/v1/agents/{name}/archival", tags=["memory"], status_code=201)
    async def archival_insert(name: str, body: ArchivalText) -> dict[str, Any]:
        """Store text in archival memory (chunked as the agent's own insert chunks it)."""

        def insert(agent: Any) -> dict[str, Any]:
            pieces = agent.embedding_chunks(body.text)
            ids = agent.storage.add_passages(agent.name, pieces, agent.embed(pieces))
            return {"ids": list(ids), "passages": len(pieces)}

        return await blocking(host.with_agent, check_name(name), insert)

    @app.post("/v1/agents/{name}/documents", tags=["memory"], status_code=201)
    async def load_document(
        name: str,
        request: Request,
        source: str = Query(default="upload", max_length=200, description="a label stored with each passage"),
        stream: bool = Query(default=False, description="progress as server-sent events"),
    ) -> Any:
        """Load a UTF-8 text or markdown document (the request body, at most ``--max-upload`` bytes) into
        archival memory, chunked as ``memgpt load`` chunks it and stored in batches; ``?stream=true`` sends
        ``progress`` events as the batches are stored. Nothing is written to disk but the passages."""
        text = _document_text(await request.body())
        label = _source_label(source)
        loading = TurnStream()

        def load(agent: Any) -> dict[str, Any]:
            pieces = agent.embedding_chunks(text)
            loading.sink({"type": "progress", "done": 0, "total": len(pieces)})
            for start in range(0, len(pieces), LOAD_BATCH):
                part = pieces[start : start + LOAD_BATCH]
                vectors = agent.embed(part)
                with agent.storage.transaction():
                    agent.storage.add_passages(agent.name, part, vectors, [{"source": label}] * len(part))
                loading.sink({"type": "progress", "done": start + len(part), "total": len(pieces)})
            return {"type": "loaded", "source": label, "passages": len(pieces)}

        await loading.start(host, check_name(name), load)
        if stream:

            async def progress() -> AsyncIterator[bytes]:
                async for event in loading.events():
                    yield sse(event)
                result, error = loading.outcome()
                if error is not None:
                    failure = _failure(error)
                    yield sse({"type": "error", "text": failure.message, "status": failure.status})
                else:
                    yield sse(result)
                yield sse("[DONE]")

            return StreamingResponse(progress(), media_type="text/event-stream", headers=SSE_HEADERS)
        async for _ in loading.events():
            pass
        result, error = loading.outcome()
        if error is not None:
            raise _failure(error)
        return result

    # ---- OpenAI-compatible chat ----

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatRequest) -> Any:
        """``model`` names an agent; the last ``user`` message is the input (the agent's memory is the
        context, earlier messages of the request are not replayed); the reply is what the agent said with
        ``send_message``. ``stream: true`` streams each ``send_message`` as it is made."""
        text = _last_user_text(body.messages)
        name = body.model
        try:
            check_name(name)
        except ValueError as exc:
            raise ApiError(404, f"no agent named {name[:80]!r} ({exc})", "not_found", "model_not_found") from None
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        try:
            turn = await TurnStream().start(host, name, lambda agent: agent.send(text))
        except AgentNotFound:
            raise ApiError(
                404, f"no agent (model) named {name!r}; GET /v1/models lists them", "not_found", "model_not_found"
            ) from None

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return sse(
                {"id": ident, "object": "chat.completion.chunk", "created": created, "model": name, "choices": [choice], **extra}
            )

        if body.stream:

            async def stream() -> AsyncIterator[bytes]:
                yield chunk({"role": "assistant", "content": ""})
                said = 0
                async for event in turn.events():
                    if event.kind == "assistant":
                        yield chunk({"content": ("\n\n" if said else "") + event.text})
                        said += 1
                result, error = turn.outcome()
                if error is not None:
                    failure, _ = await blocking(_turn_failure, host, name, error, text)
                    yield sse(error_body(failure.message, failure.kind, failure.code))
                else:
                    yield chunk({}, "stop", usage=_usage(result))
                yield sse("[DONE]")

            return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

        events = [event async for event in turn.events()]
        result, error = turn.outcome()
        if error is not None:
            raise (await blocking(_turn_failure, host, name, error, text))[0]
        reply = "\n\n".join(e.text for e in events if e.kind == "assistant")
        return {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": _usage(result),
            "memgpt": {"events": [e.to_json() for e in events], "turn": turn_summary(result) if result else None},
        }

    guarded: Callable[[Scope, Receive, Send], Awaitable[None]] = Guard(
        app, api_key=api_key, max_body=max_body, max_upload=max_upload
    )
    return guarded


def _document_text(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise ApiError(415, "the document looks binary; send UTF-8 text or markdown", "invalid_request_error")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the document is not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    if not text.strip():
        raise ApiError(400, "the document is empty")
    return text


def _source_label(source: str) -> str:
    """The last part of a file name, as a label only (it is never used as a path)."""
    label = source.replace("\\", "/").rsplit("/", 1)[-1].strip()
    label = "".join(ch for ch in label if ch.isprintable())
    return label if label not in ("", ".", "..") else "upload"


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            content = "".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
        if not content or not content.strip():
            raise ApiError(400, "the last user message is empty")
        if len(content) > MAX_MESSAGE_CHARS:
            raise ApiError(400, f"the last user message is over {MAX_MESSAGE_CHARS} characters")
        return content
    raise ApiError(400, "the request has no user message")
