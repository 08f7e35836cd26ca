"""A test server speaking text-generation-webui's OpenAI-compatible API, backed by real llama.cpp generation.

It stands in for webui (llama.cpp loader) in the test suite: field names and defaults are
``modules/api/typing.py``'s ``CompletionRequest`` (GenerationOptions + CompletionRequestParams), response
shapes and error handling ``modules/api/script.py`` / ``completions.py`` / ``tokens.py`` / ``models.py``
(oobabooga/text-generation-webui @ 1dcde41d, v4.7.3, 2026-05-03). It is kept true to the real server by
replaying what memgpt's backend said to a real webui (``plugins/memgpt-backend-webui/tests/recordings/``,
``scripts/record-webui.py``; same status, same response shape). Generation is real (SmolLM2 through
llama-cpp-python) under the GBNF ``grammar_string`` as sent. As the llama.cpp loader does, the prompt is never
cut: ``truncation_length`` only decides ``finish_reason``, and a prompt over the context gets HTTP 200 with an
empty text. webui's pydantic models ignore unknown fields; this server rejects them (422, FastAPI's shape,
which is webui's validation error shape) so a misspelled field fails the test.
Sources and deviations: ``tests/dialects/README.md``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field

from .engine import Engine, GrammarRejected, Sampling
from .server import Dialect, StrictBody, generate, unsupported


class GenerationOptions(StrictBody):
    """webui's GenerationOptions (defaults from ``modules/presets.py: default_preset_values``)."""

    preset: str | None = None
    dynatemp_low: float = 1
    dynatemp_high: float = 1
    dynatemp_exponent: float = 1
    smoothing_factor: float = 0
    smoothing_curve: float = 1
    min_p: float = 0
    top_k: int = 0
    typical_p: float = 1
    xtc_threshold: float = 0.1
    xtc_probability: float = 0
    epsilon_cutoff: float = 0
    eta_cutoff: float = 0
    tfs: float = 1
    top_a: float = 0
    top_n_sigma: float = 0
    adaptive_target: float = 0
    adaptive_decay: float = 0.9
    dry_multiplier: float = 0
    dry_allowed_length: int = 2
    dry_base: float = 1.75
    repetition_penalty: float = 1
    encoder_repetition_penalty: float = 1
    no_repeat_ngram_size: int = 0
    repetition_penalty_range: int = 1024
    penalty_alpha: float = 0
    guidance_scale: float = 1
    mirostat_mode: int = 0
    mirostat_tau: float = 5
    mirostat_eta: float = 0.1
    prompt_lookup_num_tokens: int = 0
    max_tokens_second: int = 0
    do_sample: bool = True
    dynamic_temperature: bool = False
    temperature_last: bool = False
    auto_max_new_tokens: bool = False
    ban_eos_token: bool = False
    add_bos_token: bool = True
    enable_thinking: bool = True
    reasoning_effort: str = "medium"
    preserve_thinking: bool = False
    skip_special_tokens: bool = True
    static_cache: bool = False
    truncation_length: int = 0
    seed: int = -1
    sampler_priority: list[str] | str | None = None
    custom_token_bans: str = ""
    negative_prompt: str = ""
    dry_sequence_breakers: str = '"\\n", ":", "\\"", "*"'
    grammar_string: str = ""


class CompletionBody(GenerationOptions):
    """``POST /v1/completions``: CompletionRequestParams on top of GenerationOptions."""

    model: str | None = None
    prompt: str | list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    best_of: int | None = 1
    echo: bool | None = False
    frequency_penalty: float | None = 0
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = 512
    n: int | None = Field(default=1, ge=1)
    presence_penalty: float | None = 0
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    suffix: str | None = None
    temperature: float | None = 1
    top_p: float | None = 1
    user: str | None = None


class EncodeBody(StrictBody):
    """``POST /v1/internal/token-count`` and ``/v1/internal/encode``."""

    text: str


def build(engine: Engine, *, api_key: str | None = None, model_name: str | None = None) -> Dialect:
    """The webui app; ``model_name`` defaults to the GGUF file name, as webui lists a loaded GGUF."""
    name = model_name or engine.model_path.name
    app = FastAPI(title="text-generation-webui dialect test server")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _plain(exc.errors())}, status_code=422)  # script.py: validation_error_handler

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "user"}]}

    @app.get("/v1/internal/model/info")
    async def model_info() -> dict[str, Any]:
        return {"model_name": name, "lora_names": [], "loader": "llama.cpp"}

    @app.get("/v1/internal/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/v1/internal/token-count")
    async def token_count(body: EncodeBody) -> dict[str, Any]:
        return {"length": len(engine.tokenize(body.text))}

    @app.post("/v1/internal/encode")
    async def encode(body: EncodeBody) -> dict[str, Any]:
        tokens = engine.tokenize(body.text)
        return {"tokens": tokens, "length": len(tokens)}

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> JSONResponse:
        problem = unsupported(body, {"stream": False, "logprobs": None, "messages": None, "preset": None, "negative_prompt": ""})
        if body.prompt is None:
            return _error(400, "Missing required input", "prompt")
        if problem:
            return _error(400, problem, None)
        max_tokens = 512 if body.max_tokens is None else body.max_tokens
        if max_tokens < 0:
            return _error(400, "max_tokens must be greater than or equal to 0.", "max_tokens")
        if max_tokens == 0:
            return _error(400, "max_tokens is 0 but no logprobs parameter was specified.", "max_tokens")
        gbnf = body.grammar_string if body.grammar_string.strip() else None
        if gbnf is not None:
            try:
                engine.check_grammar(gbnf)
            except GrammarRejected:
                # webui catches the generation exception (text_generation.py: "Failed to generate reply") and
                # answers 200 with an empty reply.
                gbnf, bad_grammar = None, True
            else:
                bad_grammar = False
        else:
            bad_grammar = False
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        truncation = body.truncation_length or engine.n_ctx
        banned = [int(x) for x in body.custom_token_bans.split(",") if x.strip()]
        if body.ban_eos_token:
            banned.append(engine.llama.token_eos())
        temperature = body.temperature if body.temperature is not None else 1
        sampling = Sampling(
            temperature=temperature,
            top_k=1 if temperature == 0 else body.top_k,  # completions.py: temperature 0 means greedy
            top_p=1 if body.top_p is None else body.top_p,
            min_p=body.min_p,
            typical_p=body.typical_p,
            repeat_penalty=body.repetition_penalty,
            presence_penalty=body.presence_penalty or 0,
            frequency_penalty=body.frequency_penalty or 0,
            seed=body.seed if body.seed >= 0 else None,
            banned_tokens=tuple(banned),
        )
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        choices, prompt_total, completion_total = [], 0, 0
        for prompt in prompts:
            # The llama.cpp loader sends the whole prompt: truncation_length cuts nothing (only the
            # Transformers loader cuts), it only decides finish_reason below.
            tokens = engine.tokenize(prompt, add_special=body.add_bos_token)
            prompt_total += len(tokens)
            for n in range(body.n or 1):
                if bad_grammar:
                    text = ""
                elif len(tokens) >= engine.n_ctx:
                    # llama-server answers exceed_context_size_error; webui logs it and returns an empty reply.
                    text = ""
                else:
                    seeded = sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + n)
                    result = await generate(
                        engine, request, tokens, max_tokens=max_tokens, stop=stops, gbnf=gbnf, sampling=seeded
                    )
                    text = _trim_partial_stop(result.text, stops, result.stop)
                # completions.py: the answer is re-encoded to count it, and "length" is reported when the prompt
                # and the answer reach truncation_length or the answer reaches max_tokens.
                used = len(engine.tokenize(text)) if text else 0
                finish = "length" if len(tokens) + used >= truncation or used >= max_tokens else "stop"
                completion_total += used
                prefix = prompt if body.echo else ""
                choices.append(
                    {
                        "index": len(choices),
                        "finish_reason": finish,
                        "text": prefix + text + (body.suffix or ""),
                        "logprobs": None,
                    }
                )
        return JSONResponse(
            {
                "id": f"cmpl-{time.time_ns()}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": name,
                "system_fingerprint": None,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_total,
                    "completion_tokens": completion_total,
                    "total_tokens": prompt_total + completion_total,
                },
            }
        )

    def unauthorized(path: str) -> tuple[int, Any] | None:
        return 401, {"detail": "Unauthorized"}  # verify_api_key raises HTTPException(401, "Unauthorized")

    return Dialect(
        name="webui",
        app=app,
        generation_paths=("/v1/completions",),
        error_body=lambda status, message: _error_content(status, message, None),
        unauthorized=unauthorized,
        api_key=api_key,
    )


def _trim_partial_stop(text: str, stops: list[str], stopped_by: object) -> str:
    """webui's apply_stopping_strings: with no stop string found, strip a stop string's prefix at the end."""
    if stopped_by is not None:
        return text
    for stop in stops:
        for j in range(len(stop) - 1, 0, -1):
            if text.endswith(stop[:j]):
                return text[:-j]
    return text


def _error_content(status: int, message: str, param: str | None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _error(status: int, message: str, param: str | None) -> JSONResponse:
    """webui's OpenAIError handler: ``{"error": {"message", "type", "param", "code": null}}``."""
    return JSONResponse(_error_content(status, message, param), status_code=status)


def _plain(errors: list[Any]) -> list[dict[str, Any]]:
    # pydantic's ctx can hold exception objects, which JSON cannot carry.
    return [{k: v for k, v in e.items() if k in ("type", "loc", "msg", "input")} for e in errors]
