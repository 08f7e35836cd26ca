"""A test server speaking koboldcpp's native KoboldAI API, backed by real llama.cpp generation.

koboldcpp installs from no package registry, so this stands in for it in the tests: the endpoints, field
names, defaults and response shapes are koboldcpp 1.76's (``koboldcpp.py``: ``generate()``,
``transform_genparams``, the GET/POST handlers; the embedded OpenAPI spec ``kcpp_docs.embd``), and every
exchange memgpt's backend had with a real koboldcpp 1.76 (built here once, ``scripts/record-koboldcpp.py``)
is replayed against this server by ``plugins/memgpt-backend-koboldcpp/tests/test_koboldcpp_recorded.py``:
same status, same answer shape, same token counts and probe answers. Generation is real (SmolLM2 through
llama-cpp-python) under the GBNF ``grammar`` as sent. Where koboldcpp is lenient this server is strict on
purpose: an unknown field is a 422 instead of being ignored, so a backend that misspells a field fails its
tests. Sources and deviations: ``tests/dialects/README.md``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field

from .engine import ContextOverflow, Engine, GrammarRejected, Sampling
from .server import Dialect, StrictBody, generate, validation_message

VERSION = "1.76"


class GenerateBody(StrictBody):
    """``POST /api/v1/generate``: the GenerationInput schema plus what ``generate()`` reads."""

    prompt: str
    memory: str = ""
    max_context_length: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=180, ge=1)  # koboldcpp.py: genparams.get('max_length', 180)
    temperature: float = Field(default=0.7, ge=0)
    top_k: int = Field(default=100, ge=0)
    top_a: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=0.92, ge=0, le=1)
    min_p: float = Field(default=0.0, ge=0, le=1)
    typical: float = Field(default=1.0, ge=0, le=1)
    tfs: float = Field(default=1.0, ge=0, le=1)
    rep_pen: float = Field(default=1.0, ge=1)
    rep_pen_range: int = Field(default=320, ge=0)
    rep_pen_slope: float = 1.0
    presence_penalty: float = 0.0
    mirostat: int = Field(default=0, ge=0, le=2)
    mirostat_tau: float = Field(default=5.0, ge=0)
    mirostat_eta: float = Field(default=0.1, ge=0)
    dynatemp_range: float = Field(default=0.0, ge=0)
    dynatemp_exponent: float = 1.0
    smoothing_factor: float = Field(default=0.0, ge=0)
    dry_multiplier: float = Field(default=0.0, ge=0)
    dry_base: float = Field(default=1.75, ge=0)
    dry_allowed_length: int = Field(default=2, ge=0)
    dry_penalty_last_n: int = 320
    dry_sequence_breakers: list[str] | str = Field(default_factory=list)
    xtc_threshold: float = Field(default=0.2, ge=0)
    xtc_probability: float = Field(default=0.0, ge=0)
    sampler_order: list[int] | None = None
    sampler_seed: int = -1
    stop_sequence: list[str] = Field(default_factory=list)
    trim_stop: bool = False
    use_default_badwordsids: bool = False
    ban_eos_token: bool = False
    bypass_eos: bool = False
    grammar: str = ""
    grammar_retain_state: bool = False
    genkey: str = ""
    images: list[str] = Field(default_factory=list)
    render_special: bool = False
    banned_tokens: list[str] = Field(default_factory=list)
    banned_strings: list[str] = Field(default_factory=list)
    logit_bias: dict[str, float] = Field(default_factory=dict)
    custom_token_bans: str = ""
    quiet: bool = False
    n: int = 1


class TokenCountBody(StrictBody):
    """``POST /api/extra/tokencount``: ``special`` adds the model's special (BOS) token, default true."""

    prompt: str
    special: bool = True


def build(
    engine: Engine,
    *,
    api_key: str | None = None,
    model_name: str | None = None,
    legacy_finish_reason: bool = False,
    legacy_grammar_parser: bool = False,
) -> Dialect:
    """The koboldcpp app. ``legacy_finish_reason`` reproduces koboldcpp 1.76, which reports "length" for
    everything but an EOS stop (a stop-sequence hit included; recorded against the real 1.76); by default
    finish_reason is truthful. ``legacy_grammar_parser`` reproduces 1.76's reused grammar parser: after one
    grammar fails to parse, every later grammar that does not define all rule names seen so far is ignored
    too (recorded: ``plugins/memgpt-backend-koboldcpp/tests/recordings/invalid_grammar.json``)."""
    name = "koboldcpp/" + (model_name or engine.model_path.stem)
    app = FastAPI(title="koboldcpp dialect test server")
    parser = _ReusedGrammarParser()

    def authorized(request: Request) -> bool:
        return not api_key or request.headers.get("authorization", "").removeprefix("Bearer ").strip() == api_key

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            # koboldcpp answers a body it cannot parse as JSON with a 500 (koboldcpp.py do_POST).
            return JSONResponse(error_body(500, "Error parsing input.", "bad_input"), status_code=500)
        return JSONResponse(error_body(422, validation_message(errors), "validation_error"), status_code=422)

    @app.get("/api/v1/model")
    async def model(request: Request) -> dict[str, Any]:
        # Open to all, but with --password a client without the right key gets a placeholder name (1.76).
        return {"result": name if authorized(request) else "koboldcpp/protected-model"}

    @app.get("/api/v1/info/version")
    async def api_version() -> dict[str, Any]:
        return {"result": "1.2.5"}

    @app.get("/api/extra/version")
    async def version() -> dict[str, Any]:
        return {
            "result": "KoboldCpp",
            "version": VERSION,
            "protected": bool(api_key),
            "txt2img": False,
            "vision": False,
            "transcribe": False,
        }

    @app.get("/api/extra/true_max_context_length")
    async def true_max_context_length() -> dict[str, Any]:
        return {"value": engine.n_ctx}

    @app.get("/api/v1/config/max_context_length")
    async def max_context_length() -> dict[str, Any]:
        return {"value": engine.n_ctx}

    @app.get("/api/v1/config/max_length")
    async def max_length() -> dict[str, Any]:
        return {"value": 400}  # maxhordelen's default

    @app.get("/v1/models")
    async def openai_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 1, "owned_by": "koboldcpp", "permission": [], "root": "koboldcpp"}
            ],
        }

    @app.post("/api/extra/tokencount")
    async def tokencount(body: TokenCountBody) -> dict[str, Any]:
        ids = engine.tokenize(body.prompt, add_special=body.special)
        return {"value": len(ids), "ids": ids}

    @app.post("/api/v1/generate")
    async def generate_text(body: GenerateBody, request: Request) -> JSONResponse:
        gbnf: str | None = None
        if body.grammar.strip():
            try:
                engine.check_grammar(body.grammar)
                gbnf = body.grammar
            except GrammarRejected:
                gbnf = None  # koboldcpp prints "Ignored invalid grammar sampler." and generates unconstrained
            if legacy_grammar_parser and not parser.parse(body.grammar, valid=gbnf is not None):
                gbnf = None
        ctx = min(body.max_context_length or engine.n_ctx, engine.n_ctx)
        prompt = _fit(engine.tokenize(body.memory) if body.memory else [], engine.tokenize(body.prompt), body.max_length, ctx)
        ban_eos = body.ban_eos_token or body.use_default_badwordsids
        sampling = Sampling(
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p,
            min_p=body.min_p,
            typical_p=body.typical,
            repeat_penalty=body.rep_pen,
            presence_penalty=body.presence_penalty,
            seed=body.sampler_seed if body.sampler_seed >= 0 else None,
            banned_tokens=(engine.llama.token_eos(),) if ban_eos else (),
        )
        try:
            result = await generate(
                engine, request, prompt, max_tokens=body.max_length, stop=body.stop_sequence, gbnf=gbnf, sampling=sampling
            )
        except ContextOverflow as exc:
            return JSONResponse(error_body(400, str(exc), "bad_input"), status_code=400)
        text = result.raw_text  # koboldcpp keeps the stop sequence (and the rest of its token) in the output
        if body.trim_stop:
            for stop in body.stop_sequence:
                if stop and stop in text:
                    text = text[: text.find(stop)]
        finish = result.finish
        if legacy_finish_reason and isinstance(result.stop, str):
            finish = "length"
        return JSONResponse({"results": [{"text": text, "finish_reason": finish}]})

    def unauthorized(path: str) -> tuple[int, Any] | None:
        # secure_endpoint() guards generation and token counting; the GET info endpoints stay open.
        if path in ("/api/v1/generate", "/api/extra/tokencount", "/api/extra/generate/stream", "/v1/completions"):
            return 401, {
                "detail": {"error": "Unauthorized", "msg": "Authentication key is missing or invalid.", "type": "unauthorized"}
            }
        return None

    return Dialect(
        name="koboldcpp",
        app=app,
        generation_paths=("/api/v1/generate",),
        error_body=lambda status, message: error_body(
            status, message, "service_unavailable" if status == 503 else "server_error"
        ),
        unauthorized=unauthorized,
        api_key=api_key,
    )


def error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    """koboldcpp's error shape: ``{"detail": {"msg": ..., "type": ...}}`` (e.g. its 503 "Server is busy")."""
    if status == 503:
        message = "Server is busy; please try again later."
    return {"detail": {"msg": message, "type": kind}}


class _ReusedGrammarParser:
    """koboldcpp 1.76's one global ``llama_grammar_parser``, parsed again for every request: rule names
    (``symbol_ids``) accumulate forever, rules survive a successful parse and are cleared by a failed one, and
    a parse fails when any known name has no rule ("Undefined rule")."""

    _DEFINED = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*::=", re.M)
    _LITERALS = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|#[^\n]*')
    _NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.ruled: set[str] = set()

    def parse(self, gbnf: str, *, valid: bool) -> bool:
        defined = set(self._DEFINED.findall(gbnf))
        self.names |= defined | set(self._NAME.findall(self._LITERALS.sub(" ", gbnf).replace("::=", " ")))
        if valid and self.names <= self.ruled | defined:
            self.ruled |= defined
            return True
        self.ruled = set()
        return False


def _fit(memory: list[int], prompt: list[int], max_length: int, ctx: int) -> list[int]:
    """koboldcpp (gpttype_adapter.cpp) cuts the prompt from the front so prompt + max_length fits the
    context; memory is kept whole in front of it."""
    room = max(ctx - max_length - len(memory), 1)
    if len(prompt) > room:
        prompt = prompt[len(prompt) - room :]
    return memory + prompt
