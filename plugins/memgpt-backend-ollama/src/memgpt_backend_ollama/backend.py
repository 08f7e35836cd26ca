"""Ollama's native API: ``POST /api/generate`` with ``raw: true`` and the call's JSON schema in ``format``.

Ollama takes a JSON schema (or ``"json"``) in ``format`` and no GBNF, so the backend declares JSON schema
only. The wrapper's prompt goes as is (``raw: true``: no Modelfile template), in one answer (``stream:
false``), so a completion's deadline is the same derived one the other server backends use. Sampling,
``num_ctx`` (the context the backend budgets for, sent every time so Ollama neither cuts the prompt to its
own default nor reloads the model with another size), ``num_predict`` and ``stop`` go in ``options``;
``truncate: false`` makes a prompt that does not fit an error instead of being silently cut from the front.

Usage comes from ``prompt_eval_count`` / ``eval_count``. Ollama leaves a zero out of its answers (Go's
``omitempty``), and before 0.1.49 it left ``prompt_eval_count`` out whenever the whole prompt was cached:
a missing count is unknown, so it is estimated and the usage marked inexact, never reported as 0.

Released Ollama has no tokenizer endpoint. ``/api/tokenize`` is tried once (some builds and forks have it);
on a 404 token counts are estimates from characters, with a characters-per-token ratio corrected by every
exact ``prompt_eval_count``, and ``capabilities.tokenizer`` stays false.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any, ClassVar

from memgpt.http import DEFAULT_CHARS_PER_TOKEN, HTTPBackend
from memgpt.plugin import (
    BackendError,
    BackendHTTPError,
    BackendSettings,
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
    FinishReason,
    Usage,
)
from memgpt_backend_ollama import OLLAMA

log = logging.getLogger(__name__)

#: Ollama's own default context (docs/context-length.mdx, under 24 GiB of VRAM), used when nothing says more.
DEFAULT_NUM_CTX = 4096
#: How long Ollama keeps the model loaded after a request (its own default is 5 minutes); a user's think time
#: between turns easily exceeds that, and a reload costs seconds. ``MEMGPT_OLLAMA_KEEP_ALIVE`` overrides it
#: ("-1": forever, "0": unload after each request, "": send none, so the server's OLLAMA_KEEP_ALIVE applies).
DEFAULT_KEEP_ALIVE = "30m"
KEEP_ALIVE_ENV = "MEMGPT_OLLAMA_KEEP_ALIVE"
#: Prompts shorter than this say little about the model's characters-per-token ratio.
MIN_PROMPT_TOKENS_FOR_RATIO = 16
TOKENIZE_PATH = "/api/tokenize"
#: Ollama's 404 for a model that is not pulled: `model 'x' not found` (older: `model "x" not found, try pulling it first`).
_MISSING_MODEL = re.compile(r"model ['\"][^'\"]*['\"] not found")


class OllamaBackend(HTTPBackend):
    """Backend ``ollama``: a running ``ollama serve``."""

    spec = OLLAMA
    server: ClassVar[str] = "Ollama"
    strip_suffixes: ClassVar[tuple[str, ...]] = ("/api", "/v1")
    complete_path: ClassVar[str] = "/api/generate"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self._model: str | None = settings.model
        self.keep_alive = _keep_alive(settings.options.get("keep_alive", os.environ.get(KEEP_ALIVE_ENV, DEFAULT_KEEP_ALIVE)))
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN
        #: Whether the server answers ``/api/tokenize`` (None: not asked yet).
        self.has_tokenizer: bool | None = None
        #: The model's Modelfile template, from ``/api/show`` (the prompt is sent raw, so it is informative only).
        self.template: str | None = None

    # -- completion -----------------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        try:
            return super().complete(request)
        except BackendHTTPError as err:
            raise self._explain_missing_model(err) from None

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        s = request.sampling
        options: dict[str, Any] = {
            "num_predict": request.max_tokens,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
            # Always sent, even empty: a Modelfile's own `stop` parameters would apply otherwise.
            "stop": list(request.stop),
        }
        context = self.context_window()
        if context:
            options["num_ctx"] = context
        if s.seed is not None:
            options["seed"] = s.seed
        body: dict[str, Any] = {
            "model": self.model(),
            "prompt": request.prompt,
            "raw": True,
            "stream": False,
            "options": options,
            "truncate": False,
        }
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if constraint is not None and constraint.json_schema is not None:
            body["format"] = constraint.json_schema
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        path = self.complete_path
        if isinstance(body, dict) and isinstance(body.get("error"), str):  # an error sent with HTTP 200
            raise BackendError(f"{self.server} at {self.http.url(path)} failed: {body['error']}", endpoint=self.endpoint)
        text = self.require(body, path, "response")
        if not isinstance(text, str):
            raise self.http.protocol_error(path, "a string in 'response'", body)
        completion_tokens = body.get("eval_count")
        reason = body.get("done_reason")
        finish: FinishReason
        if reason in ("stop", "length"):
            finish = reason
        else:  # builds before done_reason: a completion that used its whole budget was cut
            used = completion_tokens if isinstance(completion_tokens, int) else self.estimate_tokens(text)
            finish = "length" if used >= request.max_tokens else "stop"
        prompt_tokens = body.get("prompt_eval_count")
        cached = body.get("prompt_eval_cached_count")
        exact = isinstance(prompt_tokens, int) and prompt_tokens > 0
        if exact:
            if prompt_tokens >= MIN_PROMPT_TOKENS_FOR_RATIO:
                self.chars_per_token = len(request.prompt) / prompt_tokens
        else:  # left out (cached, or a zero): unknown, so estimated and marked inexact
            prompt_tokens = self._measure(request.prompt)
        if not isinstance(completion_tokens, int):  # left out: 0 tokens, or an old build; count what came
            completion_tokens = self._measure(text) if text else 0
            exact = exact and not text
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached if exact and isinstance(cached, int) else None,
            evaluated_tokens=prompt_tokens - cached if exact and isinstance(cached, int) else None,
            exact=exact,
        )
        model = body.get("model") if isinstance(body.get("model"), str) else None
        return Completion(text=text, finish_reason=finish, usage=usage, model=model)

    def _explain_missing_model(self, err: BackendHTTPError) -> BackendHTTPError:
        """Ollama's 404 ``model 'x' not found`` → one line that says which ``ollama pull`` fixes it."""
        if err.status_code != 404 or not _MISSING_MODEL.search(str(err)):
            return err  # a 404 of another kind: not an Ollama, or a path it lacks
        model = self._model or self.settings.model or "MODEL"
        return BackendHTTPError(
            f"{self.server} at {self.endpoint} has no model {model!r}: run `ollama pull {model}`, or name a pulled "
            "one (`ollama list`) with `memgpt configure --model` / --model.",
            status_code=404,
            endpoint=self.endpoint,
        )

    # -- tokens ---------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self.has_tokenizer is None:
            self._detect_tokenizer(text)
        if self.has_tokenizer:
            return super().count_tokens(text)  # exact, cached per text
        # An estimate whose ratio keeps improving: not cached, and it needs no server.
        return math.ceil(len(text) / self.chars_per_token) if text else 0

    def _detect_tokenizer(self, text: str) -> None:
        """Ask ``/api/tokenize`` once: a 404 means this Ollama has none (every release so far)."""
        try:
            self.token_counts.put(text, self._count(text))
        except BackendHTTPError as err:
            if err.status_code in (404, 405):
                self.has_tokenizer = False
                log.info("%s at %s has no %s: token counts are estimates", self.server, self.endpoint, TOKENIZE_PATH)
            return  # another error says nothing about the endpoint: ask again next time
        except BackendError:
            return
        self.has_tokenizer = True
        self.capabilities = OLLAMA.capabilities.model_copy(update={"tokenizer": True})

    def _count(self, text: str) -> int:
        body = self.http.post_json(TOKENIZE_PATH, {"model": self.model(), "text": text}, retry=False)
        tokens = self.require(body, TOKENIZE_PATH, "tokens")
        if not isinstance(tokens, list):
            raise self.http.protocol_error(TOKENIZE_PATH, "a list in 'tokens'", body)
        return len(tokens)

    def _measure(self, text: str) -> int:
        """Tokens of ``text``: exact where the server can count, else the estimate."""
        try:
            return self.count_tokens(text)
        except BackendError:
            return self.estimate_tokens(text)

    def estimate_tokens(self, text: str, chars_per_token: float | None = None) -> int:
        return super().estimate_tokens(text, chars_per_token or self.chars_per_token)

    # -- model and context ----------------------------------------------------------------------------

    def model(self) -> str:
        """The configured model, else the one Ollama has loaded, else the first one pulled (asked once)."""
        if self._model is None:
            loaded = self._listed("/api/ps")
            pulled = loaded or self._listed("/api/tags")
            if not pulled:
                raise BackendError(
                    f"{self.server} at {self.endpoint} has no model: pull one with `ollama pull MODEL` (e.g. "
                    "`ollama pull smollm2:135m`), then name it with `memgpt configure --model`.",
                    endpoint=self.endpoint,
                )
            self._model = pulled[0]
            if not loaded and len(pulled) > 1:
                log.warning(
                    "%s at %s has %d models and none is configured: using %s (set another with --model)",
                    self.server,
                    self.endpoint,
                    len(pulled),
                    self._model,
                )
        return self._model

    def _listed(self, path: str) -> list[str]:
        models = self.require(self.http.get_json(path), path, "models")
        if not isinstance(models, list):
            raise self.http.protocol_error(path, "a list in 'models'", models)
        return [str(m.get("model") or m.get("name")) for m in models if isinstance(m, dict) and (m.get("model") or m.get("name"))]

    def _probe(self) -> BackendStatus:
        model = self.model()
        try:
            show = self.http.post_json("/api/show", {"model": model})
        except BackendHTTPError as err:
            raise self._explain_missing_model(err) from None
        info = self.require(show, "/api/show", "model_info")
        if not isinstance(info, dict):
            raise self.http.protocol_error("/api/show", "an object in 'model_info'", show)
        template = show.get("template")
        self.template = template if isinstance(template, str) else None
        arch = info.get("general.architecture")
        trained = info.get(f"{arch}.context_length")
        trained = trained if isinstance(trained, int) and trained > 0 else None
        parameters = show.get("parameters")
        modelfile_ctx = _parameter(parameters, "num_ctx") if isinstance(parameters, str) else None
        context = self.settings.context_window or self._loaded_context(model) or modelfile_ctx
        if context is None:
            # Nothing says what Ollama would load the model with: its own default, within what the model knows.
            context = min(trained, DEFAULT_NUM_CTX) if trained else DEFAULT_NUM_CTX
        if self.has_tokenizer is None:  # known before anyone reads capabilities.tokenizer (memgpt doctor)
            self._detect_tokenizer("Hello")
        detail = f"trained context {trained}" if trained else ""
        return BackendStatus(ok=True, endpoint=self.endpoint, model=model, context_window=context, detail=detail)

    def _loaded_context(self, model: str) -> int | None:
        """The context Ollama has the model loaded with (``/api/ps``), so the backend asks for the same."""
        try:
            listing = self.http.get_json("/api/ps")
        except BackendError:
            return None
        models = listing.get("models") if isinstance(listing, dict) else None
        for entry in models if isinstance(models, list) else []:
            if isinstance(entry, dict) and model in (entry.get("model"), entry.get("name")):
                context = entry.get("context_length")
                return context if isinstance(context, int) and context > 0 else None
        return None


def _keep_alive(value: Any) -> str | float | None:
    """``keep_alive`` as Ollama reads it: a number is seconds, a string a Go duration ("30m"); a bare number in
    a string (from the environment) is sent as a number, since Ollama refuses a duration without a unit."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value.strip()
        return int(number) if number.is_integer() else number
    return value if isinstance(value, int | float) else str(value)


def _parameter(parameters: str, name: str) -> int | None:
    """An integer ``PARAMETER`` of the Modelfile, from ``/api/show``'s ``parameters`` text."""
    match = re.search(rf"^{name}\s+(\d+)\s*$", parameters, re.MULTILINE)
    return int(match.group(1)) if match else None
