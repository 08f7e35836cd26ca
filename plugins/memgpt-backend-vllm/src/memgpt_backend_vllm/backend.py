"""vLLM's OpenAI-compatible server: ``POST /v1/completions`` with ``structured_outputs``.

vLLM constrains with ``structured_outputs: {"json": schema}`` or ``{"grammar": ...}`` (its xgrammar
backend reads GBNF). The older top-level ``guided_json`` / ``guided_grammar`` were removed in 0.12.0 and
are sent only to a server whose ``/version`` is older. ``model`` is required: it comes from the
configuration or the first entry of ``/v1/models``, which also gives ``max_model_len``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from memgpt.errors import BackendError
from memgpt.llm.backend import BackendSettings
from memgpt.llm.http_backend import HTTPBackend, first_model, openai_completion, openai_request
from memgpt.llm.types import BackendStatus, Completion, CompletionRequest, ConstraintKind
from memgpt_backend_vllm import CAPABILITIES

#: The first vLLM release without the ``guided_*`` request fields.
STRUCTURED_OUTPUTS_ONLY = (0, 12)


def parse_version(text: str) -> tuple[int, int] | None:
    match = re.match(r"\s*v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


class VLLMBackend(HTTPBackend):
    """Backend ``vllm``: a running ``vllm serve`` (default ``http://localhost:8000``)."""

    name = "vllm"
    server: ClassVar[str] = "vLLM"
    default_endpoint: ClassVar[str] = "http://localhost:8000"
    complete_path: ClassVar[str] = "/v1/completions"
    capabilities = CAPABILITIES

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self._model: str | None = settings.model
        self._legacy: bool | None = None

    def _payload(self, request: CompletionRequest, kind: ConstraintKind | None) -> dict[str, Any]:
        body = {"model": self.model(), **openai_request(request, penalty_key="repetition_penalty")}
        if kind is not None:
            constraint = request.constraint
            assert constraint is not None
            value = constraint.json_schema if kind == "json_schema" else constraint.gbnf
            if self.legacy_fields():
                body["guided_json" if kind == "json_schema" else "guided_grammar"] = value
            else:
                body["structured_outputs"] = {"json" if kind == "json_schema" else "grammar": value}
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

    def legacy_fields(self) -> bool:
        """Whether the server predates 0.12 and wants ``guided_*`` (asked once; unknown = current)."""
        if self._legacy is None:
            try:
                version = self.http.get_json("/version")
            except BackendError:
                version = None
            parsed = parse_version(str(version.get("version", ""))) if isinstance(version, dict) else None
            self._legacy = parsed is not None and parsed < STRUCTURED_OUTPUTS_ONLY
        return self._legacy

    def _probe(self) -> BackendStatus:
        listing = self.http.get_json("/v1/models")
        entry = first_model(self, listing)
        if self.settings.model:  # a server started with several names: describe the one configured
            entry = next((e for e in listing["data"] if isinstance(e, dict) and e.get("id") == self.settings.model), entry)
        context = entry.get("max_model_len")
        return BackendStatus(ok=True, endpoint=self.endpoint, model=str(entry["id"]), context_window=context if isinstance(context, int) else None)
