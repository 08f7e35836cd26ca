"""text-generation-webui's OpenAI-compatible API: ``POST /v1/completions`` with ``grammar_string``.

The web UI takes no JSON schema (no ``response_format`` on completions), so the backend declares GBNF
only; core sends the grammar its builder made. Tokens are counted by the loaded model's tokenizer through
``/v1/internal/token-count``. The API cannot tell the context size: ``truncation_length`` is sent from
the configured context window, so the web UI never cuts the prompt at its own (smaller) default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memgpt.errors import BackendError
from memgpt.llm.http_backend import HTTPBackend, openai_completion, openai_request
from memgpt.llm.types import BackendStatus, Completion, CompletionRequest, ConstraintKind
from memgpt_backend_webui import CAPABILITIES


class WebUIBackend(HTTPBackend):
    """Backend ``webui``: a running text-generation-webui with its API on (default ``http://localhost:5000``)."""

    name = "webui"
    server: ClassVar[str] = "text-generation-webui"
    default_endpoint: ClassVar[str] = "http://localhost:5000"
    complete_path: ClassVar[str] = "/v1/completions"
    capabilities = CAPABILITIES

    def _payload(self, request: CompletionRequest, kind: ConstraintKind | None) -> dict[str, Any]:
        body = openai_request(request, penalty_key="repetition_penalty")
        if self.settings.model:
            body["model"] = self.settings.model
        if self.settings.context_window:
            body["truncation_length"] = self.settings.context_window
        if kind == "gbnf":
            body["grammar_string"] = request.constraint.gbnf  # type: ignore[union-attr]
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        return openai_completion(self, body, request)

    def _count(self, text: str) -> int:
        body = self.http.post_json("/v1/internal/token-count", {"text": text})
        length = self.require(body, "/v1/internal/token-count", "length")
        if not isinstance(length, int):
            raise self.http.protocol_error("/v1/internal/token-count", "an integer in 'length'", body)
        return length

    def _probe(self) -> BackendStatus:
        info = self.http.get_json("/v1/internal/model/info")
        model = self.require(info, "/v1/internal/model/info", "model_name")
        if not model or model == "None":
            raise BackendError(
                f"text-generation-webui at {self.endpoint} has no model loaded: load one in its Model tab "
                "(or start it with --model NAME).",
                endpoint=self.endpoint,
            )
        return BackendStatus(ok=True, endpoint=self.endpoint, model=str(model), context_window=self.settings.context_window)
