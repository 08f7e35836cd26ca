"""LM Studio's OpenAI-compatible API: ``POST /v1/completions`` constrained by ``response_format``.

LM Studio enforces ``response_format: {"type": "json_schema", ...}`` with llama.cpp grammars for GGUF
models, so the backend declares JSON schema only. It has no tokenizer endpoint: ``count_tokens`` estimates
from characters, and every completion's ``usage.prompt_tokens`` corrects the characters-per-token ratio
of this model. The loaded model and its context size come from LM Studio's own ``/api/v0/models``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from memgpt.http import DEFAULT_CHARS_PER_TOKEN, HTTPBackend, first_model, openai_completion, openai_request
from memgpt.plugin import (
    BackendError,
    BackendHTTPError,
    BackendSettings,
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
)
from memgpt_backend_lmstudio import LMSTUDIO

#: Prompts shorter than this say little about the model's characters-per-token ratio.
MIN_PROMPT_TOKENS_FOR_RATIO = 16


class LMStudioBackend(HTTPBackend):
    """Backend ``lmstudio``: LM Studio's local server."""

    spec = LMSTUDIO
    server: ClassVar[str] = "LM Studio"
    strip_suffixes: ClassVar[tuple[str, ...]] = ("/v1", "/api/v0")
    complete_path: ClassVar[str] = "/v1/completions"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN
        self._model: str | None = settings.model

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        body = openai_request(request, penalty_key="repeat_penalty", min_p=False)
        model = self.model()
        if model:
            body["model"] = model
        if constraint is not None and constraint.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "memgpt_output", "strict": True, "schema": constraint.json_schema},
            }
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        completion = openai_completion(self, body, request)
        usage = completion.usage
        if usage.exact and usage.prompt_tokens >= MIN_PROMPT_TOKENS_FOR_RATIO:
            self.chars_per_token = len(request.prompt) / usage.prompt_tokens
        return completion

    def count_tokens(self, text: str) -> int:
        # An estimate whose ratio keeps improving: not cached, and it needs no server.
        return math.ceil(len(text) / self.chars_per_token) if text else 0

    def _count(self, text: str) -> int:
        return self.count_tokens(text)

    def estimate_tokens(self, text: str, chars_per_token: float | None = None) -> int:
        return super().estimate_tokens(text, chars_per_token or self.chars_per_token)

    def model(self) -> str | None:
        """The model to ask for: the configured one, else the one LM Studio has loaded (asked once)."""
        if self._model is None:
            status = self.check()
            self._model = status.model if status.ok else None
        return self._model

    def _probe(self) -> BackendStatus:
        try:
            listing = self.http.get_json("/api/v0/models")
        except BackendHTTPError as err:
            if err.status_code != 404:
                raise
            # Builds without the REST API v0: the OpenAI list names the model but not its context.
            model = self.settings.model or first_model(self, self.http.get_json("/v1/models"))["id"]
            return BackendStatus(ok=True, endpoint=self.endpoint, model=model, context_window=None)
        entries = self.require(listing, "/api/v0/models", "data")
        llms = (
            [e for e in entries if isinstance(e, dict) and e.get("type", "llm") in ("llm", "vlm")]
            if isinstance(entries, list)
            else []
        )
        wanted = [e for e in llms if e.get("id") == self.settings.model] if self.settings.model else []
        loaded = [e for e in llms if e.get("state") == "loaded"]
        chosen = next(iter(wanted or loaded), None)
        if chosen is None:
            raise BackendError(
                f"LM Studio at {self.endpoint} has no model loaded: load one in LM Studio (or `lms load MODEL`), "
                "or name one with `memgpt configure --model` so LM Studio loads it on demand.",
                endpoint=self.endpoint,
            )
        # loaded_context_length is what the loaded instance runs with; max_context_length what it could.
        context = chosen.get("loaded_context_length") or chosen.get("max_context_length")
        return BackendStatus(
            ok=True, endpoint=self.endpoint, model=str(chosen["id"]), context_window=context if isinstance(context, int) else None
        )
