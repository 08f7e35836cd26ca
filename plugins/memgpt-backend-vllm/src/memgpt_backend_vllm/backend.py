"""vLLM's OpenAI-compatible server: ``POST /v1/completions`` with ``structured_outputs``.

vLLM constrains with ``structured_outputs: {"grammar": ...}`` (its default xgrammar engine reads GBNF) or
``{"json": schema}``. The older top-level ``guided_json`` / ``guided_grammar`` are never sent: they were
removed in 0.12.0 and a server that does not know a field ignores it with HTTP 200, so an old server simply
generates unconstrained, which the output check (fail closed) catches. ``model`` is required: it comes from
the configuration or the first entry of ``/v1/models``, which also gives ``max_model_len``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memgpt.plugin import (
    BackendSettings,
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
    HTTPBackend,
    first_model,
    openai_completion,
    openai_request,
)
from memgpt_backend_vllm import VLLM


class VLLMBackend(HTTPBackend):
    """Backend ``vllm``: a running ``vllm serve``."""

    spec = VLLM
    server: ClassVar[str] = "vLLM"
    complete_path: ClassVar[str] = "/v1/completions"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self._model: str | None = settings.model

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        body = {"model": self.model(), **openai_request(request, penalty_key="repetition_penalty")}
        if constraint is not None and constraint.gbnf is not None:
            body["structured_outputs"] = {"grammar": constraint.gbnf}
        elif constraint is not None and constraint.json_schema is not None:
            body["structured_outputs"] = {"json": constraint.json_schema}
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        return openai_completion(self, body, request)

    def _count(self, text: str) -> int:
        body = self.http.post_json("/tokenize", {"model": self.model(), "prompt": text, "add_special_tokens": False})
        count = self.require(body, "/tokenize", "count")
        if not isinstance(count, int):
            raise self.http.protocol_error("/tokenize", "an integer in 'count'", body)
        return count

    def model(self) -> str:
        """The configured model, else the first one the server lists (asked once)."""
        if self._model is None:
            self._model = str(first_model(self, self.http.get_json("/v1/models"))["id"])
        return self._model

    def _probe(self) -> BackendStatus:
        listing = self.http.get_json("/v1/models")
        entry = first_model(self, listing)
        if self.settings.model:  # a server started with several names: describe the one configured
            entry = next((e for e in listing["data"] if isinstance(e, dict) and e.get("id") == self.settings.model), entry)
        context = entry.get("max_model_len")
        return BackendStatus(
            ok=True, endpoint=self.endpoint, model=str(entry["id"]), context_window=context if isinstance(context, int) else None
        )
