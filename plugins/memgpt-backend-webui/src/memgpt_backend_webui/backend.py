"""text-generation-webui's OpenAI-compatible API: ``POST /v1/completions`` with ``grammar_string``.

The web UI takes no JSON schema (no ``response_format`` on completions), so the backend declares GBNF
only; core sends the grammar its builder made. Tokens are counted by the loaded model's tokenizer through
``/v1/internal/token-count``. The API cannot tell the context size: ``truncation_length`` is sent from
the configured context window (the Transformers loader cuts prompts to it; with the llama.cpp loader it only
decides ``finish_reason``).

Verified against a real webui (``tests/recordings/``): an empty answer has two causes the generic "empty
completion" does not name, both told apart here from what webui reports. A prompt over the loaded context
comes back as HTTP 200, ``text: ""``, ``completion_tokens: 0``, ``finish_reason: "length"`` (webui's
llama.cpp loader never cuts the prompt); a grammar the loader refuses comes back as HTTP 200, ``text: ""``,
``finish_reason: "stop"`` (webui logs "Failed to generate reply" and answers empty). Neither is retried.
``model`` in the body is accepted and not used: webui answers with whatever model is loaded, so a
different name in the answer is warned about once.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memgpt.plugin import (
    BackendError,
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
    EmptyCompletion,
    HTTPBackend,
    openai_completion,
    openai_request,
)
from memgpt_backend_webui import WEBUI


class PromptOverContext(EmptyCompletion):
    """webui answered an over-long prompt with nothing (its llama.cpp loader does not cut prompts)."""

    retryable = False


class GrammarRefused(EmptyCompletion):
    """webui answered a constrained request with nothing: its loader refused (or failed on) the grammar."""

    retryable = False


class WebUIBackend(HTTPBackend):
    """Backend ``webui``: a running text-generation-webui with its API on."""

    spec = WEBUI
    server: ClassVar[str] = "text-generation-webui"
    complete_path: ClassVar[str] = "/v1/completions"

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        body = openai_request(request, penalty_key="repetition_penalty")
        if self.settings.model:
            body["model"] = self.settings.model
        if self.settings.context_window:
            body["truncation_length"] = self.settings.context_window
        if constraint is not None and constraint.gbnf is not None:
            body["grammar_string"] = constraint.gbnf
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        completion = openai_completion(self, body, request)
        if not completion.text and completion.usage.exact and completion.usage.completion_tokens == 0:
            self._empty(completion, request)
        configured = self.settings.model
        if configured and completion.model and completion.model != configured:
            self._warn_once(
                "model",
                "%s at %s answered with its loaded model %r, not the configured %r: webui ignores `model` on "
                "/v1/completions; load the model in webui (Model tab or --model)",
                self.server,
                self.endpoint,
                completion.model,
                configured,
            )
        return completion

    def _empty(self, completion: Completion, request: CompletionRequest) -> None:
        """Name the cause of an empty answer that webui's own report gives away (see the module docstring)."""
        url = self.http.url(self.complete_path)
        if completion.finish_reason == "length":  # webui: prompt_tokens + 0 >= truncation_length
            raise PromptOverContext(
                f"{self.server} at {url} returned an empty completion for a prompt of {completion.usage.prompt_tokens} "
                f"tokens (finish: length): the prompt does not fit the loaded context (webui's llama.cpp loader never "
                "cuts a prompt, it answers nothing). Load the model with a larger context (n_ctx / --ctx-size) and set "
                "the same with `memgpt configure --context-window N`.",
                endpoint=self.endpoint,
            )
        if request.constraint is not None and request.constraint.gbnf:
            raise GrammarRefused(
                f"{self.server} at {url} returned an empty completion for a request constrained by a grammar: its "
                "loader refused the grammar or failed while generating (webui's console says 'Failed to generate "
                "reply'). Check the grammar with llama.cpp, or try another wrapper.",
                endpoint=self.endpoint,
            )

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
