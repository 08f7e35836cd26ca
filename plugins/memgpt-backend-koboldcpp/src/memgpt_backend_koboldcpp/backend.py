"""koboldcpp's native KoboldAI API: ``POST /api/v1/generate`` with a GBNF ``grammar``.

koboldcpp takes no JSON schema on this API, so the backend declares GBNF only. The answer carries just
the text: usage is counted afterwards with koboldcpp's own tokenizer (``/api/extra/tokencount``), and
marked inexact because the completion is re-tokenized rather than reported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memgpt.errors import BackendError
from memgpt.llm.http_backend import HTTPBackend
from memgpt.llm.types import BackendStatus, Completion, CompletionRequest, ConstraintKind, FinishReason, Usage
from memgpt_backend_koboldcpp import CAPABILITIES


class KoboldCppBackend(HTTPBackend):
    """Backend ``koboldcpp``: a running koboldcpp (default ``http://localhost:5001``)."""

    name = "koboldcpp"
    server: ClassVar[str] = "koboldcpp"
    default_endpoint: ClassVar[str] = "http://localhost:5001"
    strip_suffixes: ClassVar[tuple[str, ...]] = ("/api/v1", "/api", "/v1")
    complete_path: ClassVar[str] = "/api/v1/generate"
    capabilities = CAPABILITIES

    def _payload(self, request: CompletionRequest, kind: ConstraintKind | None) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "prompt": request.prompt,
            # koboldcpp defaults to 100 new tokens and a 2048-token context: always send both.
            "max_length": request.max_tokens,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "min_p": s.min_p,
            "rep_pen": s.repeat_penalty,
            "stop_sequence": list(request.stop),
            # Leave the matched stop string out of the text, as the other servers do.
            "trim_stop": True,
        }
        context = self.context_window()
        if context:
            body["max_context_length"] = context
        if s.seed is not None:
            body["sampler_seed"] = s.seed
        if kind == "gbnf":
            body["grammar"] = request.constraint.gbnf  # type: ignore[union-attr]
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        path = self.complete_path
        result = self.require(body, path, "results", 0)
        text = self.require(body, path, "results", 0, "text")
        if not isinstance(result, dict) or not isinstance(text, str):
            raise self.http.protocol_error(path, "a string in results[0].text", body)
        prompt_tokens = self._measure(request.prompt)
        completion_tokens = self._measure(text)
        reported = result.get("finish_reason")
        finish: FinishReason
        if reported in ("length", "stop", "eos"):
            finish = "length" if reported == "length" else "stop"
        else:  # builds before finish_reason: a completion that used its whole budget was cut
            finish = "length" if completion_tokens >= request.max_tokens else "stop"
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=min(completion_tokens, request.max_tokens), exact=False)
        return Completion(text=text, finish_reason=finish, usage=usage)

    def _measure(self, text: str) -> int:
        """Tokens of ``text`` from koboldcpp's tokenizer, or an estimate if it cannot tell right now."""
        try:
            return self.count_tokens(text)
        except BackendError:
            return self.estimate_tokens(text)

    def _count(self, text: str) -> int:
        # special=false: no BOS of its own, since the text is a piece of a prompt (koboldcpp adds one by default).
        body = self.http.post_json("/api/extra/tokencount", {"prompt": text, "special": False})
        value = self.require(body, "/api/extra/tokencount", "value")
        if not isinstance(value, int):
            raise self.http.protocol_error("/api/extra/tokencount", "an integer in 'value'", body)
        return value

    def _probe(self) -> BackendStatus:
        model = self.require(self.http.get_json("/api/v1/model"), "/api/v1/model", "result")
        body = self.http.get_json("/api/extra/true_max_context_length")
        context = self.require(body, "/api/extra/true_max_context_length", "value")
        if not isinstance(context, int):
            raise self.http.protocol_error("/api/extra/true_max_context_length", "an integer in 'value'", body)
        # koboldcpp names the model "koboldcpp/<file stem>".
        name = str(model).removeprefix("koboldcpp/") or None
        return BackendStatus(ok=True, endpoint=self.endpoint, model=name, context_window=context)
