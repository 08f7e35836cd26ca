"""koboldcpp's native KoboldAI API: ``POST /api/v1/generate`` with a GBNF ``grammar``.

koboldcpp takes no JSON schema on this API, so the backend declares GBNF only. The answer carries just
the text: usage is counted afterwards with koboldcpp's own tokenizer (``/api/extra/tokencount``), and
marked inexact because the completion is re-tokenized rather than reported.
"""

from __future__ import annotations

from typing import Any, ClassVar

from memgpt.plugin import (
    BackendError,
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
    ConstraintKind,
    FinishReason,
    HTTPBackend,
    Usage,
)
from memgpt_backend_koboldcpp import KOBOLDCPP

#: What ``GET /api/v1/model`` answers a client without the right key when koboldcpp runs with ``--password``.
PROTECTED_MODEL = "koboldcpp/protected-model"


def _cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string (koboldcpp leaves the stop string, and the rest of the token that
    completed it, in the text), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i != -1]
    return (text[: min(cuts)], True) if cuts else (text, False)


class KoboldCppBackend(HTTPBackend):
    """Backend ``koboldcpp``: a running koboldcpp."""

    spec = KOBOLDCPP
    server: ClassVar[str] = "koboldcpp"
    strip_suffixes: ClassVar[tuple[str, ...]] = ("/api/v1", "/api", "/v1")
    complete_path: ClassVar[str] = "/api/v1/generate"

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
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
            # No trim_stop: koboldcpp 1.76 reports a stop-string hit as finish_reason "length", so the stop string
            # left in the text is the only sign the completion was not cut; _parse trims it.
            "stop_sequence": list(request.stop),
        }
        context = self.context_window()
        if context:
            body["max_context_length"] = context
        if s.seed is not None:
            body["sampler_seed"] = s.seed
        if constraint is not None and constraint.gbnf is not None:
            body["grammar"] = constraint.gbnf
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        path = self.complete_path
        result = self.require(body, path, "results", 0)
        text = self.require(body, path, "results", 0, "text")
        if not isinstance(result, dict) or not isinstance(text, str):
            raise self.http.protocol_error(path, "a string in results[0].text", body)
        text, stopped = _cut_at_stop(text, request.stop)
        prompt_tokens = self._measure(request.prompt)
        completion_tokens = self._measure(text)
        reported = result.get("finish_reason")
        finish: FinishReason
        if stopped:  # koboldcpp ends a completion at the first stop string, whatever finish_reason says
            finish = "stop"
        elif reported in ("length", "stop", "eos"):
            finish = "length" if reported == "length" else "stop"
        else:  # builds before finish_reason: a completion that used its whole budget was cut
            finish = "length" if completion_tokens >= request.max_tokens else "stop"
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=min(completion_tokens, request.max_tokens), exact=False)
        return Completion(text=text, finish_reason=finish, usage=usage)

    def _verify(self, completion: Completion, request: CompletionRequest, kind: ConstraintKind | None) -> Completion:
        ignored = self.ignored_constraints
        checked = super()._verify(completion, request, kind)
        if self.ignored_constraints > ignored:
            self._warn_once(
                "grammar-parser",
                "koboldcpp 1.76 keeps its grammar parser between requests: once it has failed to parse one grammar, it "
                "ignores later ones ('Ignored invalid grammar sampler.' in its console) until it is restarted",
            )
        return checked

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
        if model == PROTECTED_MODEL:
            from memgpt.config import api_key_env_var

            key = "the API key memgpt sent is wrong" if self.settings.api_key is not None else "memgpt sent no API key"
            return BackendStatus(
                ok=False,
                endpoint=self.endpoint,
                context_window=context,
                detail=(
                    f"koboldcpp at {self.endpoint} runs with --password and {key}: set it with `memgpt configure "
                    f"--api-key KEY` or {api_key_env_var(self.name)}"
                ),
            )
        # koboldcpp names the model "koboldcpp/<file stem>".
        name = str(model).removeprefix("koboldcpp/") or None
        return BackendStatus(ok=True, endpoint=self.endpoint, model=name, context_window=context)
