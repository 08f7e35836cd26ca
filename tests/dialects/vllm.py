"""A test server speaking vLLM's OpenAI-compatible API (0.12 era), backed by real llama.cpp generation.

vLLM cannot be installed here (it needs a GPU stack), so this stands in for it: the request fields are
vLLM's ``CompletionRequest`` (``vllm/entrypoints/openai/protocol.py`` / ``engine/protocol.py``, after the
``guided_*`` fields were removed in 0.12.0), ``StructuredOutputsParams`` (``vllm/sampling_params.py``), the
``/tokenize`` request and response, ``ModelCard`` with ``max_model_len``, and vLLM's error bodies
(``{"error": {"message", "type", "param", "code"}}``, 400 for validation errors). ``structured_outputs.json``
becomes a llama.cpp grammar through llama-cpp-python's converter and ``structured_outputs.grammar`` is used as
GBNF; generation is real (SmolLM2). vLLM logs and ignores unknown fields; this server rejects them (400), and
``model`` is required and must be the served name. Sources and deviations: ``tests/dialects/README.md``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from .engine import ContextOverflow, Engine, GrammarRejected, Sampling, choice_gbnf
from .server import Dialect, StrictBody, generate, unsupported, validation_message

_JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


class StructuredOutputs(StrictBody):
    """``StructuredOutputsParams``: one constraint kind, plus options."""

    json_: dict[str, Any] | str | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_fallback: bool = False
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None


class JsonSchemaFormat(StrictBody):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class CompletionBody(StrictBody):
    """``POST /v1/completions``: OpenAI fields, vLLM's sampling params and extra params."""

    model: str  # optional in vLLM (defaults to the served model); required here so clients always send it
    prompt: str | list[str] | list[int]
    echo: bool | None = False
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = Field(default=16, ge=0)
    n: int = Field(default=1, ge=1)
    presence_penalty: float | None = 0.0
    seed: int | None = None
    stop: str | list[str] | None = Field(default_factory=list)
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    use_beam_search: bool = False
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = Field(default_factory=list)
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    allowed_token_ids: list[int] | None = None
    prompt_logprobs: int | None = None
    bad_words: list[str] = Field(default_factory=list)
    prompt_embeds: Any = None
    add_special_tokens: bool = True
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None
    priority: int = 0
    request_id: str | None = None
    logits_processors: list[Any] | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    cache_salt: str | None = None
    kv_transfer_params: dict[str, Any] | None = None
    vllm_xargs: dict[str, Any] | None = None


class TokenizeBody(StrictBody):
    """``POST /tokenize`` (TokenizeCompletionRequest)."""

    model: str | None = None
    prompt: str
    add_special_tokens: bool = True
    return_token_strs: bool | None = False


def build(
    engine: Engine,
    *,
    api_key: str | None = None,
    model_name: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
    version: str = "0.12.0",
) -> Dialect:
    """The vLLM app serving one model as ``model_name`` (vLLM's ``--served-model-name``)."""
    app = FastAPI(title="vLLM dialect test server")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, validation_message(exc.errors()), "Bad Request")  # vLLM turns FastAPI's 422 into 400

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/version")
    async def get_version() -> dict[str, Any]:
        return {"version": version}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        permission = {
            "id": f"modelperm-{uuid.uuid4().hex}",
            "object": "model_permission",
            "created": int(time.time()),
            "allow_create_engine": False,
            "allow_sampling": True,
            "allow_logprobs": True,
            "allow_search_indices": False,
            "allow_view": True,
            "allow_fine_tuning": False,
            "organization": "*",
            "group": None,
            "is_blocking": False,
        }
        card = {
            "id": model_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": model_name,
            "parent": None,
            "max_model_len": engine.n_ctx,
            "permission": [permission],
        }
        return {"object": "list", "data": [card]}

    @app.post("/tokenize")
    async def tokenize(body: TokenizeBody) -> JSONResponse:
        if body.model is not None and body.model != model_name:
            return _unknown_model(body.model)
        tokens = engine.tokenize(body.prompt, add_special=body.add_special_tokens)
        strs = [engine.llama._model.token_get_text(t) for t in tokens] if body.return_token_strs else None
        return JSONResponse({"count": len(tokens), "max_model_len": engine.n_ctx, "tokens": tokens, "token_strs": strs})

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> JSONResponse:
        if body.model != model_name:
            return _unknown_model(body.model)
        problem = unsupported(
            body,
            {
                "stream": False,
                "logprobs": None,
                "prompt_logprobs": None,
                "use_beam_search": False,
                "prompt_embeds": None,
                "logits_processors": None,
                "allowed_token_ids": None,
                "logit_bias": None,
                "min_tokens": 0,
                "bad_words": [],
            },
        )
        if problem:
            return _error(400, problem, "BadRequestError")
        try:
            gbnf = _constraint(engine, body)
        except (GrammarRejected, ValueError) as exc:
            return _error(400, str(exc), "BadRequestError")
        prompts: list[str | list[int]] = (
            [body.prompt] if isinstance(body.prompt, str) or _is_tokens(body.prompt) else list(body.prompt)
        )  # type: ignore[list-item]
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        sampling = Sampling(
            temperature=1.0 if body.temperature is None else body.temperature,
            top_k=body.top_k if body.top_k and body.top_k > 0 else 0,
            top_p=1.0 if body.top_p is None else body.top_p,
            min_p=body.min_p or 0.0,
            repeat_penalty=body.repetition_penalty or 1.0,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            seed=body.seed,
            banned_tokens=(engine.llama.token_eos(),) if body.ignore_eos else (),
        )
        choices, prompt_total, completion_total = [], 0, 0
        for prompt in prompts:
            tokens = engine.tokenize(prompt, add_special=body.add_special_tokens) if isinstance(prompt, str) else list(prompt)
            if body.truncate_prompt_tokens not in (None, -1):
                tokens = tokens[-body.truncate_prompt_tokens :] if body.truncate_prompt_tokens else []
            max_tokens = body.max_tokens if body.max_tokens is not None else engine.n_ctx - len(tokens)
            if len(tokens) + max_tokens > engine.n_ctx:
                return _error(
                    400,
                    f"This model's maximum context length is {engine.n_ctx} tokens. However, you requested "
                    f"{len(tokens) + max_tokens} tokens ({len(tokens)} in the messages, {max_tokens} in the completion). "
                    "Please reduce the length of the messages or completion.",
                    "BadRequestError",
                    param="max_tokens",
                )
            prompt_total += len(tokens)
            for _ in range(body.n):
                try:
                    result = await generate(
                        engine,
                        request,
                        tokens,
                        max_tokens=max_tokens,
                        stop=stops,
                        stop_tokens=body.stop_token_ids or (),
                        gbnf=gbnf,
                        sampling=sampling,
                    )
                except ContextOverflow as exc:
                    return _error(400, str(exc), "BadRequestError")
                text = result.text
                if body.include_stop_str_in_output and isinstance(result.stop, str):
                    text += result.stop
                if body.echo:
                    text = (prompt if isinstance(prompt, str) else engine.detokenize(prompt)) + text
                completion_total += result.completion_tokens
                choices.append(
                    {
                        "index": len(choices),
                        "text": text + (body.suffix or ""),
                        "logprobs": None,
                        "finish_reason": result.finish,
                        "stop_reason": result.stop,
                        "token_ids": None,
                        "prompt_logprobs": None,
                        "prompt_token_ids": None,
                    }
                )
        return JSONResponse(
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model_name,
                "choices": choices,
                "service_tier": None,
                "system_fingerprint": None,
                "usage": {
                    "prompt_tokens": prompt_total,
                    "total_tokens": prompt_total + completion_total,
                    "completion_tokens": completion_total,
                    "prompt_tokens_details": None,
                },
                "kv_transfer_params": None,
            }
        )

    def unauthorized(path: str) -> tuple[int, Any] | None:
        return (401, {"error": "Unauthorized"}) if path.startswith("/v1") else None  # vLLM's --api-key guards /v1 only

    return Dialect(
        name="vllm",
        app=app,
        generation_paths=("/v1/completions",),
        error_body=lambda status, message: _error_content(
            status, message, "InternalServerError" if status >= 500 else "BadRequestError"
        ),
        unauthorized=unauthorized,
        api_key=api_key,
    )


def _constraint(engine: Engine, body: CompletionBody) -> str | None:
    """The GBNF a request's structured_outputs / response_format asks for (None: unconstrained)."""
    so = body.structured_outputs
    if body.response_format is not None and body.response_format.type != "text":
        if so is not None:
            raise ValueError("Use either `response_format` or `structured_outputs`, not both.")
        rf = body.response_format
        if rf.type == "json_object":
            return engine.schema_to_gbnf(_JSON_OBJECT_SCHEMA)
        if rf.json_schema is None:
            raise ValueError("When response_format type is 'json_schema', the 'json_schema' field must be provided.")
        return engine.schema_to_gbnf(rf.json_schema.schema_ or {})
    if so is None:
        return None
    kinds = [
        k for k in ("json_", "regex", "choice", "grammar", "json_object", "structural_tag") if getattr(so, k) not in (None, False)
    ]
    if len(kinds) > 1:
        raise ValueError("You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice').")
    if not kinds:
        return None
    kind = kinds[0]
    if kind == "json_":
        return engine.schema_to_gbnf(so.json_)  # type: ignore[arg-type]
    if kind == "grammar":
        engine.check_grammar(so.grammar or "")
        return so.grammar
    if kind == "choice":
        return choice_gbnf(so.choice or [])
    if kind == "json_object":
        return engine.schema_to_gbnf(_JSON_OBJECT_SCHEMA)
    raise ValueError(f"structured_outputs.{kind} is accepted by vLLM but not implemented by this test server")


def _is_tokens(prompt: Any) -> bool:
    return isinstance(prompt, list) and bool(prompt) and all(isinstance(t, int) for t in prompt)


def _unknown_model(model: str) -> JSONResponse:
    return _error(404, f"The model `{model}` does not exist.", "NotFoundError", param="model")


def _error_content(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def _error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    """vLLM's ErrorResponse: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(_error_content(status, message, kind, param), status_code=status)
