"""llama.cpp's native ``llama-server`` over HTTP: ``POST /completion`` with GBNF or a JSON schema.

The native endpoint (not the OpenAI-compatible one) is used because it takes a raw prompt with
``grammar`` / ``json_schema``, keeps the KV cache of the shared prefix (``cache_prompt``) and reports how
many prompt tokens it reused (``timings.cache_n``) and processed (``timings.prompt_n``).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, ClassVar

from memgpt.plugin import (
    BackendError,
    BackendStatus,
    BackendUnreachable,
    Completion,
    CompletionRequest,
    Constraint,
    FinishReason,
    HTTPBackend,
    HTTPClient,
    Usage,
    first_model,
)
from memgpt_backend_llamacpp import LLAMACPP

#: llama-server announces that its default port moves from 8080 to 9931; a user who kept the default
#: endpoint may be running either.
NEXT_DEFAULT_ENDPOINT = "http://localhost:9931"


class LlamaServerBackend(HTTPBackend):
    """Backend ``llamacpp``: a running llama.cpp ``llama-server``."""

    spec = LLAMACPP
    server: ClassVar[str] = "llama-server"
    complete_path: ClassVar[str] = "/completion"

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "n_predict": request.max_tokens,
            "stop": list(request.stop),
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
            # Default true in recent builds, false in older ones: always ask, the agent's prompts share a
            # long stable prefix.
            "cache_prompt": True,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if constraint is not None and constraint.gbnf is not None:
            body["grammar"] = constraint.gbnf
        elif constraint is not None and constraint.json_schema is not None:
            body["json_schema"] = constraint.json_schema
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        path = self.complete_path
        text = self.require(body, path, "content")
        if not isinstance(text, str):
            raise self.http.protocol_error(path, "a string in 'content'", body)
        return Completion(text=text, finish_reason=_finish(body), usage=_usage(body), model=body.get("model") or None)

    def _count(self, text: str) -> int:
        # add_special=false: a piece of a prompt gets no BOS of its own; parse_special=true: the wrapper's
        # control tokens (<|im_start|>) count as the single tokens the server will see.
        body = self.http.post_json("/tokenize", {"content": text, "add_special": False, "parse_special": True})
        tokens = self.require(body, "/tokenize", "tokens")
        if not isinstance(tokens, list):
            raise self.http.protocol_error("/tokenize", "a list in 'tokens'", body)
        return len(tokens)

    def _props(self) -> dict[str, Any]:
        body = self.http.get_json("/props")
        if not isinstance(body, dict):
            raise self.http.protocol_error("/props", "a JSON object", body)
        return body

    def _probe(self) -> BackendStatus:
        try:
            return self._probe_here()
        except BackendUnreachable as down:
            if self.endpoint != self.default_endpoint:
                raise
            moved = HTTPClient(
                NEXT_DEFAULT_ENDPOINT, server=self.server, backend=self.name, api_key=self.settings.api_key,
                timeout=self.settings.timeout, retries=0, backoff=self.http.backoff,
            )  # fmt: skip
            here, self.http, self.endpoint = self.http, moved, NEXT_DEFAULT_ENDPOINT
            try:
                status = self._probe_here()
            except BackendError:
                self.http, self.endpoint = here, self.default_endpoint
                moved.close()
                raise down from None
            moved.retries = here.retries
            here.close()
            return status

    def _probe_here(self) -> BackendStatus:
        props = self._props()
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if not isinstance(n_ctx, int):
            n_ctx = props.get("n_ctx") if isinstance(props.get("n_ctx"), int) else None
        model = props.get("model_alias") or _file_name(props.get("model_path"))
        if not model:
            model = first_model(self, self.http.get_json("/v1/models"))["id"]
        return BackendStatus(ok=True, endpoint=self.endpoint, model=model, context_window=n_ctx)

    def chat_template(self) -> str | None:
        try:
            template = self._props().get("chat_template")
        except BackendError:
            return None
        return template if isinstance(template, str) and template else None


def _finish(body: dict[str, Any]) -> FinishReason:
    stop_type = body.get("stop_type")
    if stop_type is not None:
        return "length" if stop_type == "limit" else "stop"
    return "length" if body.get("stopped_limit") else "stop"  # builds before stop_type (2024)


def _usage(body: dict[str, Any]) -> Usage:
    """Prompt tokens, and how many of them came from the KV cache (``cache_n``) vs evaluated (``prompt_n``)."""
    found = body.get("timings")
    timings: dict[str, Any] = found if isinstance(found, dict) else {}
    prompt = body.get("tokens_evaluated")
    evaluated = timings.get("prompt_n")
    cached = timings.get("cache_n")
    if not isinstance(cached, int) and isinstance(prompt, int) and isinstance(evaluated, int):
        cached = prompt - evaluated
    if not isinstance(prompt, int) and isinstance(cached, int) and isinstance(evaluated, int):
        prompt = cached + evaluated
    completion = body.get("tokens_predicted", timings.get("predicted_n"))
    exact = isinstance(prompt, int) and isinstance(completion, int)
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
        cached_tokens=cached if isinstance(cached, int) else 0,
        evaluated_tokens=evaluated if isinstance(evaluated, int) else None,
        exact=exact,
    )


def _file_name(path: Any) -> str | None:
    return PurePath(path).name if isinstance(path, str) and path else None
