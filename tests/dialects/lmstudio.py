"""A test server speaking LM Studio's OpenAI-compatible and v0 REST APIs, backed by real llama.cpp generation.

LM Studio cannot be installed here, so this stands in for it: endpoints, the documented payload parameters and
response shapes follow LM Studio's docs (lmstudio-ai/docs: ``1_developer/3_openai-compat/*``,
``2_rest/endpoints.mdx``, ``structured-output.md``) and what its bug tracker shows the server answering
(``{"error": "..."}`` bodies, ``system_fingerprint`` and an empty ``stats`` on ``/v1`` responses). Structured
output is ``response_format: {"type": "json_schema", "json_schema": {"name", "strict", "schema"}}``; like LM
Studio with a GGUF model, the schema becomes a llama.cpp grammar (llama-cpp-python's converter here) and
generation is real (SmolLM2). Unknown fields are rejected (400) where LM Studio would ignore them.
Sources and deviations: ``tests/dialects/README.md``.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field

from .engine import ContextOverflow, Engine, GrammarRejected, Sampling
from .server import Dialect, StrictBody, generate, unsupported, validation_message


class JsonSchemaFormat(StrictBody):
    name: str = "response"
    description: str | None = None
    strict: bool | str | None = None  # LM Studio's own docs send the string "true"
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(StrictBody):
    type: str
    json_schema: JsonSchemaFormat | None = None


class Sampled(StrictBody):
    """The payload parameters LM Studio documents for its OpenAI-compatible endpoints."""

    model: str
    max_tokens: int = Field(default=-1, ge=-1)  # -1: until the context is full
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, ge=0, le=1)
    top_k: int = Field(default=40, ge=0)
    stop: str | list[str] | None = None
    stream: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    repeat_penalty: float = Field(default=1.1, gt=0)
    seed: int | None = None
    response_format: ResponseFormat | None = None
    ttl: int | None = None
    draft_model: str | None = None


class CompletionBody(Sampled):
    prompt: str


class ChatMessage(StrictBody):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None


class ChatBody(Sampled):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


def build(engine: Engine, *, api_key: str | None = None, model_name: str = "smollm2-135m-instruct") -> Dialect:
    """The LM Studio app serving one loaded model under the identifier ``model_name``."""
    meta = engine.metadata
    quant = engine.model_path.stem.rsplit(".", 1)[-1]
    info = {
        "id": model_name,
        "object": "model",
        "type": "llm",
        "publisher": meta.get("general.organization", "unknown"),
        "arch": meta.get("general.architecture", "llama"),
        "compatibility_type": "gguf",
        "quantization": quant,
        "state": "loaded",
        "max_context_length": engine.n_ctx_train,
        "loaded_context_length": engine.n_ctx,
    }
    app = FastAPI(title="LM Studio dialect test server")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=400)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"data": [{"id": model_name, "object": "model", "owned_by": "organization_owner"}], "object": "list"}

    @app.get("/api/v0/models")
    async def rest_models() -> dict[str, Any]:
        return {"object": "list", "data": [info]}

    @app.get("/api/v0/models/{model}")
    async def rest_model(model: str) -> JSONResponse:
        if model != model_name:
            return _unknown_model(model, model_name)
        return JSONResponse(info)

    async def complete(body: Sampled, request: Request, prompt: str, *, rest: bool) -> JSONResponse | tuple[Any, ...]:
        if body.model != model_name:
            return _unknown_model(body.model, model_name)
        problem = unsupported(body, {"stream": False, "logit_bias": None, "draft_model": None})
        if problem or getattr(body, "tools", None):
            return JSONResponse({"error": problem or "`tools` is not implemented by this test server"}, status_code=400)
        gbnf = None
        if body.response_format is not None:
            if body.response_format.type not in ("json_schema", "text"):
                return JSONResponse({"error": "'response_format.type' must be 'json_schema' or 'text'"}, status_code=400)
            if body.response_format.type == "json_schema":
                if body.response_format.json_schema is None:
                    return JSONResponse({"error": "'response_format.json_schema' is required"}, status_code=400)
                try:
                    gbnf = engine.schema_to_gbnf(body.response_format.json_schema.schema_)
                except GrammarRejected as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
        sampling = Sampling(
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p,
            repeat_penalty=body.repeat_penalty,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            seed=body.seed,
        )
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        max_tokens = engine.n_ctx if body.max_tokens == -1 else body.max_tokens
        started = time.monotonic()
        try:
            result = await generate(engine, request, prompt, max_tokens=max_tokens, stop=stops, gbnf=gbnf, sampling=sampling)
        except ContextOverflow as exc:
            return JSONResponse(
                {"error": f"The number of tokens to keep from the initial prompt is greater than the context length ({exc})"},
                status_code=400,
            )
        usage = {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        }
        extra: dict[str, Any] = {"stats": {}, "system_fingerprint": model_name}
        if rest:  # /api/v0 adds real stats, model_info and runtime
            seconds = max(time.monotonic() - started, 1e-6)
            reason = {"length": "maxPredictedTokensReached"}.get(result.finish, "stopStringFound" if result.stop else "eosFound")
            extra = {
                "stats": {
                    "tokens_per_second": result.completion_tokens / seconds,
                    "time_to_first_token": 0.0,
                    "generation_time": seconds,
                    "stop_reason": reason,
                },
                "model_info": {"arch": info["arch"], "quant": quant, "format": "gguf", "context_length": engine.n_ctx},
                "runtime": {
                    "name": "llama.cpp (llama-cpp-python, dialect test server)",
                    "version": "0",
                    "supported_formats": ["gguf"],
                },
            }
        return result.text, result.finish, usage, extra

    @app.post("/v1/completions")
    @app.post("/api/v0/completions")
    async def completions(body: CompletionBody, request: Request) -> JSONResponse:
        answer = await complete(body, request, body.prompt, rest=request.url.path.startswith("/api/"))
        if isinstance(answer, JSONResponse):
            return answer
        text, finish, usage, extra = answer
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return JSONResponse(
            {
                "id": _id("cmpl-"),
                "object": "text_completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [choice],
                "usage": usage,
                **extra,
            }
        )

    @app.post("/v1/chat/completions")
    @app.post("/api/v0/chat/completions")
    async def chat(body: ChatBody, request: Request) -> JSONResponse:
        prompt = engine.render_chat([m.model_dump(exclude_none=True) for m in body.messages])
        answer = await complete(body, request, prompt, rest=request.url.path.startswith("/api/"))
        if isinstance(answer, JSONResponse):
            return answer
        text, finish, usage, extra = answer
        choice = {"index": 0, "logprobs": None, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
        return JSONResponse(
            {
                "id": _id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": [choice],
                "usage": usage,
                **extra,
            }
        )

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def unexpected(request: Request) -> JSONResponse:
        # LM Studio answers an unknown endpoint with 200 and an error body ("Returning 200 anyway").
        return JSONResponse({"error": f"Unexpected endpoint or method. ({request.method} {request.url.path})"})

    def unauthorized(path: str) -> tuple[int, Any] | None:
        return 401, {"error": "Invalid or missing API token. Send it as `Authorization: Bearer <token>`."}

    return Dialect(
        name="lmstudio",
        app=app,
        generation_paths=("/v1/completions", "/v1/chat/completions", "/api/v0/completions", "/api/v0/chat/completions"),
        error_body=lambda status, message: {"error": message},
        unauthorized=unauthorized,
        api_key=api_key,
    )


def _unknown_model(model: str, served: str) -> JSONResponse:
    message = f'Invalid model identifier "{model}". Please specify a valid downloaded model (e.g. {served}).'
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": "model", "code": "model_not_found"}},
        status_code=404,
    )


def _id(prefix: str) -> str:
    return prefix + "".join(random.choices(string.ascii_lowercase + string.digits, k=20))
