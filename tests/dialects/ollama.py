"""A test server speaking Ollama's native API (``/api/*``), backed by real llama.cpp generation.

Ollama is not on a package registry this machine reaches, so this stands in for it, built from Ollama's
published API documentation (``docs/api.md``, ``docs/api/errors.mdx``, ``docs/faq.mdx``,
``docs/context-length.mdx``) and the request/response types those docs describe (``api/types.go``:
``GenerateRequest``, ``Options``, ``Metrics``, ``ShowResponse``, ``ProcessModelResponse``). ``format`` is
``"json"`` or a JSON schema object; like Ollama (which hands the schema to llama.cpp's converter), the schema
becomes a llama.cpp grammar here (llama-cpp-python's converter, repetitions compacted as llama.cpp writes
them) and generation is real (SmolLM2). Ollama ignores unknown fields and options (it logs "invalid option
provided"); this server rejects them with 400 ``{"error": ...}``. Sources and deviations:
``tests/dialects/README.md``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field

from .engine import ContextOverflow, Engine, GrammarRejected, Sampling
from .server import Dialect, StrictBody, generate, validation_message

#: Ollama's default context when neither the request nor OLLAMA_CONTEXT_LENGTH sets one (< 24 GiB VRAM).
DEFAULT_NUM_CTX = 4096
#: ``api.DefaultOptions()``.
DEFAULTS = {"num_keep": 4, "temperature": 0.8, "top_k": 40, "top_p": 0.9, "typical_p": 1.0, "repeat_penalty": 1.0}
_DURATION = re.compile(r"^(?:0|[-+]?(?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+)$")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class Options(StrictBody):
    """``api.Options`` (runtime) and ``api.Runner`` (load-time) fields, plus the two the docs' example still
    lists (``penalize_newline``, ``numa``). Every field is optional: unset means the model's default."""

    num_keep: int | None = None
    seed: int | None = None
    num_predict: int | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_last_n: int | None = None
    temperature: float | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None
    num_ctx: int | None = Field(default=None, ge=0)
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    use_mmap: bool | None = None
    num_thread: int | None = None
    draft_num_predict: int | None = None
    penalize_newline: bool | None = None
    numa: bool | None = None


class GenerateBody(StrictBody):
    """``POST /api/generate`` (``api.GenerateRequest``)."""

    model: str
    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] | None = None
    stream: bool | None = None  # Ollama's default is to stream (NDJSON)
    raw: bool = False
    format: Any = None  # "json", a JSON schema object, "" or null
    keep_alive: str | int | float | None = None
    images: list[str] | None = None
    options: Options | None = None
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
    debug_render_only: bool = Field(default=False, alias="_debug_render_only")
    logprobs: bool = False
    top_logprobs: int = 0


class ModelBody(StrictBody):
    """``POST /api/show`` (``api.ShowRequest``; ``name`` is the deprecated spelling of ``model``)."""

    model: str = ""
    name: str = ""
    system: str = ""
    template: str = ""
    verbose: bool = False
    options: dict[str, Any] | None = None


class TokenizeBody(StrictBody):
    """``POST /api/tokenize``: not in any Ollama release; the shape of the open pull requests."""

    model: str
    text: str
    keep_alive: str | int | float | None = None
    options: dict[str, Any] | None = None


def build(
    engine: Engine,
    *,
    api_key: str | None = None,
    model_name: str = "smollm2:135m",
    version: str = "0.33.0-rc2",
    tokenize: bool = False,
    legacy_prompt_count: bool = False,
) -> Dialect:
    """The Ollama app with one pulled model, ``model_name``.

    - ``tokenize``: also serve ``POST /api/tokenize`` (absent from released Ollama: 404 by default).
    - ``legacy_prompt_count``: omit ``prompt_eval_count`` when the whole prompt was in the KV cache, as Ollama
      did before 0.1.49 (ollama/ollama#2068, #3427); the field is ``omitempty``, so it is then missing.
    """
    meta = engine.metadata
    arch = meta.get("general.architecture", "llama")
    quant = engine.model_path.stem.rsplit(".", 1)[-1].upper()
    digest = hashlib.sha256(str(engine.model_path).encode()).hexdigest()
    details = {
        "parent_model": "",
        "format": "gguf",
        "family": arch,
        "families": [arch],
        "parameter_size": "134.52M",
        "quantization_level": quant,
    }
    model_info: dict[str, Any] = {"general.architecture": arch}
    for key, value in meta.items():
        if key.startswith(("general.", f"{arch}.", "tokenizer.ggml.")) and not key.startswith("tokenizer.chat_template"):
            model_info[key] = _number(value)
    model_info[f"{arch}.context_length"] = engine.n_ctx_train
    stops = ("<|im_start|>", "<|im_end|>")
    parameters = "\n".join(f'stop{" " * 27}"{s}"' for s in stops)
    # A ChatML template in Ollama's Go-template syntax (what `ollama show --template` prints for a ChatML model).
    template = (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
    )
    modified = "2026-08-21T10:00:00.000000000Z"
    # What Ollama has loaded: the model's context and when it expires (None: not loaded), and the tokens in its
    # KV cache (prompt + answer of the last request), for ``legacy_prompt_count``.
    state: dict[str, Any] = {"num_ctx": None, "expires": None, "cached": ()}
    lock = threading.Lock()
    app = FastAPI(title="Ollama dialect test server")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, validation_message(exc.errors()))

    def known(name: str) -> bool:
        """Ollama's name rule: a missing tag means ``:latest``."""
        return _with_tag(name) == _with_tag(model_name)

    def not_found(name: str) -> JSONResponse:
        return _error(404, f"model '{name}' not found")

    @app.get("/")
    @app.head("/")
    async def root() -> PlainTextResponse:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    async def get_version() -> dict[str, str]:
        return {"version": version}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        entry = {
            "name": model_name,
            "model": model_name,
            "modified_at": modified,
            "size": engine.model_path.stat().st_size,
            "digest": digest,
            "details": details,
        }
        return {"models": [entry]}

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        with lock:
            expire(time.time())
            if state["num_ctx"] is None:
                return {"models": []}
            expires = state["expires"]
        until = datetime.fromtimestamp(min(expires, 4102444800.0), UTC).isoformat().replace("+00:00", "Z")
        entry = {
            "name": model_name,
            "model": model_name,
            "size": engine.model_path.stat().st_size,
            "digest": digest,
            "details": details,
            "expires_at": until,
            "size_vram": 0,
            "context_length": state["num_ctx"],
        }
        return {"models": [entry]}

    @app.post("/api/show")
    async def show(body: ModelBody) -> JSONResponse:
        name = body.model or body.name
        if not name:
            return _error(400, "model is required")
        if not known(name):
            return not_found(name)
        info = dict(model_info)
        if body.verbose:
            vocab = engine.llama._model
            info["tokenizer.ggml.tokens"] = [vocab.token_get_text(i) for i in range(engine.llama.n_vocab())]
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            f"FROM {engine.model_path}\n"
            f'TEMPLATE """{template}"""\n' + "\n".join(f'PARAMETER stop "{s}"' for s in stops) + "\n"
        )
        return JSONResponse(
            {
                "modelfile": modelfile,
                "parameters": parameters,
                "template": template,
                "details": details,
                "model_info": info,
                "capabilities": ["completion"],
                "modified_at": modified,
            }
        )

    if tokenize:

        @app.post("/api/tokenize")
        async def tokenize_text(body: TokenizeBody) -> JSONResponse:
            if not known(body.model):
                return not_found(body.model)
            return JSONResponse({"model": body.model, "tokens": engine.tokenize(body.text, add_special=False)})

    def expire(now: float) -> None:
        if state["expires"] is not None and now >= state["expires"]:
            state.update(num_ctx=None, expires=None, cached=())

    def load(num_ctx: int, keep_alive: float) -> float:
        """Load (or keep) the model with ``num_ctx``; seconds the load took (0 when it was loaded already)."""
        with lock:
            now = time.time()
            expire(now)
            reloaded = state["num_ctx"] != num_ctx
            if reloaded:  # a different num_ctx reloads the model in Ollama: its cache is gone
                state.update(num_ctx=num_ctx, cached=())
            state["expires"] = now + keep_alive if keep_alive >= 0 else float("inf")
            return 0.05 if reloaded else 0.0

    @app.post("/api/generate")
    async def generate_text(body: GenerateBody, request: Request) -> JSONResponse:
        started = time.monotonic()
        if not known(body.model):
            return not_found(body.model)
        try:
            keep_alive = _keep_alive(body.keep_alive)
        except ValueError as exc:
            return _error(400, str(exc))
        if body.top_logprobs < 0 or body.top_logprobs > 20:
            return _error(400, "top_logprobs must be between 0 and 20")
        created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if not body.prompt and keep_alive == 0:
            with lock:
                state.update(num_ctx=None, expires=None, cached=())
            return JSONResponse(
                {"model": body.model, "created_at": created, "response": "", "done": True, "done_reason": "unload"}
            )
        if body.raw and (body.template or body.system or body.context):
            return _error(400, "raw mode does not support template, system, or context")
        for field, value in (
            ("stream", body.stream is not False),
            ("suffix", body.suffix),
            ("images", body.images),
            ("think", body.think not in (None, False)),
            ("template", body.template),
            ("context", body.context),
            ("logprobs", body.logprobs),
            ("_debug_render_only", body.debug_render_only),
        ):
            if value:
                hint = " (Ollama streams unless `stream` is false)" if field == "stream" else ""
                return _error(400, f"`{field}` is accepted by Ollama but not implemented by this test server{hint}")
        opts = body.options or Options()
        num_ctx = min(opts.num_ctx or DEFAULT_NUM_CTX, engine.n_ctx)
        load_seconds = load(num_ctx, keep_alive)
        if not body.prompt:
            return JSONResponse({"model": body.model, "created_at": created, "response": "", "done": True, "done_reason": "load"})
        gbnf = None
        if body.format not in (None, ""):
            if body.format == "json":
                schema: Any = {"type": "object"}
            elif isinstance(body.format, dict):
                schema = body.format
            else:
                return _error(500, f'invalid format: {body.format!r}; expected "json" or a valid JSON Schema object')
            try:
                gbnf = engine.schema_to_gbnf(schema)
            except GrammarRejected as exc:
                return _error(400, str(exc))
        prompt = body.prompt
        if not body.raw:
            system = [{"role": "system", "content": body.system}] if body.system else []
            prompt = engine.render_chat([*system, {"role": "user", "content": prompt}])
        tokens = engine.tokenize(prompt)
        if len(tokens) > num_ctx - 1:
            if body.truncate is False:
                return _error(400, "the request exceeds the available context size, try increasing it")
            keep = min(max(opts.num_keep if opts.num_keep is not None else DEFAULTS["num_keep"], 0), num_ctx - 1)
            limit = num_ctx - max((num_ctx - keep) // 2, 1)
            tokens = tokens[:keep] + tokens[len(tokens) - (limit - keep) :]
        predict = opts.num_predict if opts.num_predict is not None and opts.num_predict >= 0 else num_ctx
        sampling = Sampling(
            temperature=_or(opts.temperature, DEFAULTS["temperature"]),
            top_k=int(_or(opts.top_k, DEFAULTS["top_k"])),
            top_p=_or(opts.top_p, DEFAULTS["top_p"]),
            min_p=_or(opts.min_p, 0.0),
            typical_p=_or(opts.typical_p, DEFAULTS["typical_p"]),
            repeat_penalty=_or(opts.repeat_penalty, DEFAULTS["repeat_penalty"]),
            presence_penalty=_or(opts.presence_penalty, 0.0),
            frequency_penalty=_or(opts.frequency_penalty, 0.0),
            seed=opts.seed if opts.seed is not None and opts.seed >= 0 else None,
        )
        with lock:
            cached = state["cached"]
        fully_cached = len(cached) >= len(tokens) and tuple(cached[: len(tokens)]) == tuple(tokens)
        budget = max(0, min(predict, num_ctx - len(tokens)))
        try:
            if budget == 0:  # nothing fits: Ollama answers at once with "length"
                result = await generate(engine, request, tokens, max_tokens=0, sampling=sampling)
            else:
                result = await generate(
                    engine, request, tokens, max_tokens=budget, stop=opts.stop or (), gbnf=gbnf, sampling=sampling
                )
        except ContextOverflow as exc:
            return _error(400, str(exc))
        with lock:
            state["cached"] = tuple(tokens) + tuple(result.tokens)
        elapsed = max(time.monotonic() - started, 1e-6)
        answer: dict[str, Any] = {
            "model": body.model,
            "created_at": created,
            "response": result.text,
            "done": True,
            "done_reason": result.finish,
        }
        if not body.raw:  # raw mode returns no context
            answer["context"] = list(tokens) + list(result.tokens)
        total_ns = int(elapsed * 1e9)
        prompt_share = len(tokens) / max(len(tokens) + 10 * result.completion_tokens, 1)
        metrics = {
            "total_duration": total_ns,
            "load_duration": int(load_seconds * 1e9),
            "prompt_eval_count": 0 if (legacy_prompt_count and fully_cached) else result.prompt_tokens,
            "prompt_eval_duration": int(total_ns * prompt_share),
            "eval_count": result.completion_tokens,
            "eval_duration": total_ns - int(total_ns * prompt_share),
        }
        answer.update({k: v for k, v in metrics.items() if v})  # Go's omitempty: a 0 is left out
        return JSONResponse(answer)

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
    async def unknown_path(request: Request) -> PlainTextResponse:
        return PlainTextResponse("404 page not found", status_code=404)  # gin's answer to an unknown route

    def unauthorized(path: str) -> tuple[int, Any] | None:
        # Ollama itself has no API key; behind an authenticating reverse proxy every path is guarded.
        return 401, {"error": "unauthorized"}

    def error_body(status: int, message: str) -> dict[str, str]:
        if status == 503:
            return {"error": "server busy, please try again.  maximum pending requests exceeded"}
        return {"error": message}

    return Dialect(
        name="ollama",
        app=app,
        generation_paths=("/api/generate",),
        error_body=error_body,
        unauthorized=unauthorized,
        api_key=api_key,
    )


def _error(status: int, message: str) -> JSONResponse:
    """Ollama's error shape: ``{"error": "<message>"}``."""
    return JSONResponse({"error": message}, status_code=status)


def _with_tag(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return name if ":" in base else name + ":latest"


def _or(value: Any, default: float) -> float:
    return default if value is None else value


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _keep_alive(value: str | float | None) -> float:
    """``keep_alive`` in seconds (negative: forever), as Ollama's ``api.Duration`` reads it: a number of
    seconds, or a Go duration string ("5m", "1h30m", "-1m"); unset is the default 5 minutes."""
    if value is None:
        return 300.0
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if not _DURATION.match(text):  # Go's time.ParseDuration messages
        if re.fullmatch(r"[-+]?\d+(?:\.\d*)?", text):
            raise ValueError(f'time: missing unit in duration "{value}"')
        raise ValueError(f'time: invalid duration "{value}"')
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(n) * _UNIT_NS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text))
    return sign * total / 1e9
