"""A lenient OpenAI-compatible completions server that ignores every constraint field, backed by real llama.cpp.

The other dialect servers here are strict on purpose (an unknown field is a 400). Many real OpenAI-compatible
servers are the opposite: they read the fields they know and silently drop the rest, so a ``grammar``,
``structured_outputs``, ``json_schema`` or a ``response_format`` they do not implement costs nothing but the
constraint. This server stands for them (its fields are those Ollama documents for ``/v1/completions``:
``model``, ``prompt``, ``max_tokens``, ``stop``, ``temperature``, ``top_p``, ``seed``, ``frequency_penalty``,
``presence_penalty``, ``suffix``, ``stream``; docs.ollama.com/api/openai-compatibility), so that the ``openai``
backend's fail-closed path runs against a server that really generates:

- ``POST /v1/completions``: the fields above are applied, every other field is accepted and ignored (HTTP 200,
  unconstrained generation); ``stream: true`` → 400 (not implemented here) →
  ``{"id", "object": "text_completion", "created", "model", "system_fingerprint": "fp_ollama", "choices":
  [{"text", "index": 0, "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}``;
- ``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by":
  "library"}]}``: no context size;
- no tokenizer endpoint and no ``/props`` (404).

It is not in ``DIALECTS`` (it models no one server): start it with
``DialectServer(openai_lenient.build(engine)).start()``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .engine import ContextOverflow, Engine, Sampling
from .server import Dialect, generate, validation_message

MODEL = "smollm2:135m"


class CompletionBody(BaseModel):
    """The fields it reads; anything else is dropped (``extra="ignore"``), as lenient servers do."""

    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: str
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    suffix: str | None = None
    stream: bool = False


def build(engine: Engine, *, api_key: str | None = None, model_name: str = MODEL) -> Dialect:
    app = FastAPI(title="lenient OpenAI-compatible test server")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, validation_message(exc.errors()))

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": int(time.time()), "owned_by": "library"}],
        }

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> JSONResponse:
        if body.stream:
            return _error(400, "`stream` is not implemented by this test server")
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        sampling = Sampling(
            temperature=body.temperature,
            top_k=0,
            top_p=body.top_p,
            min_p=0.0,
            seed=body.seed,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
        )
        max_tokens = body.max_tokens or engine.n_ctx
        try:
            result = await generate(engine, request, body.prompt, max_tokens=max_tokens, stop=stops, gbnf=None, sampling=sampling)
        except ContextOverflow as exc:
            return _error(400, str(exc))
        return JSONResponse(
            {
                "id": f"cmpl-{uuid.uuid4().hex[:8]}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.model,
                "system_fingerprint": "fp_ollama",
                "choices": [{"text": result.text + (body.suffix or ""), "index": 0, "finish_reason": result.finish}],
                "usage": {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "total_tokens": result.prompt_tokens + result.completion_tokens,
                },
            }
        )

    return Dialect(
        name="openai-lenient",
        app=app,
        generation_paths=("/v1/completions",),
        error_body=lambda status, message: _error_content(message, "api_error" if status >= 500 else "invalid_request_error"),
        unauthorized=lambda path: (401, _error_content("invalid api key", "invalid_request_error")),
        api_key=api_key,
    )


def _error_content(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(_error_content(message), status_code=status)
