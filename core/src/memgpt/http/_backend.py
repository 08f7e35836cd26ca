"""What every server backend shares, so that each plugin only writes its dialect.

``HTTPBackend`` owns the HTTP client, the retry of a whole completion (a 5xx or an empty answer is tried
again, a timed-out generation is not), the deadline of each completion (from its ``max_tokens`` and the
generation speed measured on earlier ones, unless the user fixed ``timeout``), the token-count cache, the
fail-closed check of constrained output, and ``check()`` that never raises. A dialect subclass fills in five small methods:

- ``_payload(request, constraint)``: the JSON body for one completion, built fresh for every call;
  ``constraint`` is the request's constraint in the one kind this backend chose to enforce (``None``: send
  none), so a dialect sends ``constraint.gbnf`` or ``constraint.json_schema``, whichever is set;
- ``_parse(body, request)``: text, finish reason and usage out of the server's answer;
- ``_count(text)``: the token count of ``text`` (exact from the server, or an estimate);
- ``_probe()``: model name and context size, for ``check()``;
- ``complete_path``: where completions are posted.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, ClassVar

from memgpt.contract.backend import Backend, BackendSettings
from memgpt.contract.conformance import violation
from memgpt.contract.types import (
    BackendStatus,
    Completion,
    CompletionRequest,
    Constraint,
    ConstraintKind,
    FinishReason,
    Usage,
)
from memgpt.errors import BackendError, EmptyCompletion
from memgpt.http._client import CONNECT_TIMEOUT, Deadlines, HTTPClient, normalize_endpoint, retry_call

log = logging.getLogger(__name__)

#: Characters per token before a backend has measured its model (English prose on BPE vocabularies).
DEFAULT_CHARS_PER_TOKEN = 3.5
#: Generation speed (tokens/s) assumed until a completion was measured: a small CPU under load.
ASSUMED_TOKENS_PER_SECOND = 3.0
#: Prompt processing speed (tokens/s) assumed for a prompt the server may have to evaluate whole.
ASSUMED_PROMPT_TOKENS_PER_SECOND = 25.0
#: A completion may take DEADLINE_MARGIN times what those speeds predict, plus DEADLINE_SLACK seconds.
DEADLINE_MARGIN = 2.0
DEADLINE_SLACK = 30.0
#: Completions shorter than this say little about the generation speed (prompt time dominates).
MIN_MEASURED_TOKENS = 8


class TokenCountCache:
    """A small LRU of ``text -> token count``: the agent counts the same system prompt and messages on
    every step, and each count would otherwise be an HTTP round trip."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._entries: OrderedDict[str, int] = OrderedDict()
        self.hits = 0

    def get(self, text: str) -> int | None:
        count = self._entries.get(text)
        if count is not None:
            self._entries.move_to_end(text)
            self.hits += 1
        return count

    def put(self, text: str, count: int) -> None:
        self._entries[text] = count
        self._entries.move_to_end(text)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class HTTPBackend(Backend):
    """Base of the backends that talk to a model server over HTTP (see the module docstring)."""

    from_spec: ClassVar[tuple[str, ...]] = (*Backend.from_spec, "default_endpoint")

    #: Human name of the server, for messages ("llama-server", "koboldcpp").
    server: ClassVar[str] = "server"
    #: Where the server is when the user names no endpoint (a registered backend's comes from its ``spec``).
    default_endpoint: ClassVar[str] = "http://localhost:8080"
    #: Path prefixes users paste along with the endpoint that the backend adds itself.
    strip_suffixes: ClassVar[tuple[str, ...]] = ("/v1",)
    complete_path: ClassVar[str] = "/completion"

    def __init__(self, settings: BackendSettings):
        self.settings = settings
        self.endpoint = normalize_endpoint(settings.endpoint or self.default_endpoint, strip_suffixes=self.strip_suffixes)
        self.http = HTTPClient(
            self.endpoint,
            server=self.server,
            backend=self.name,
            api_key=settings.api_key,
            timeout=settings.timeout,
            retries=settings.retries,
            backoff=float(settings.options.get("backoff", 0.5)),
        )
        self.token_counts = TokenCountCache(int(settings.options.get("token_cache_size", 4096)))
        #: Constrained completions whose output did not match the constraint (the server ignored it).
        self.ignored_constraints = 0
        #: Generation speed measured on this server's completions (tokens/s, prompt time included), or None.
        self.tokens_per_second: float | None = None
        #: What the last ``check()`` found (None before the first).
        self.last_check: BackendStatus | None = None
        self._context: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http!r})"

    # -- the Backend contract -------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        kind = self.constraint_kind(request)
        chosen = request.constraint.only(kind) if kind is not None and request.constraint is not None else None
        payload = self._payload(request, chosen)
        deadlines = self.completion_deadlines(request)
        started = time.perf_counter()

        def once() -> Completion:
            body = self.http.post_json(self.complete_path, payload, deadlines=deadlines, retry=False)
            completion = self._parse(body, request)
            if not completion.text:
                raise EmptyCompletion(
                    f"{self.server} at {self.http.url(self.complete_path)} returned an empty completion "
                    f"(finish: {completion.finish_reason}): the prompt may already fill the context window, or "
                    "the model ended its turn at once; try a larger context or another wrapper.",
                    endpoint=self.endpoint,
                )
            return completion

        completion = retry_call(
            once,
            retries=self.http.retries,
            backoff=self.http.backoff,
            what=f"completion at {self.http.url(self.complete_path)}",
            retry_timeouts=False,
        )
        seconds = time.perf_counter() - started
        self._note_speed(completion, seconds)
        completion = completion.model_copy(update={"seconds": seconds, "constrained_by": kind})
        return self._verify(completion, request, kind)

    def completion_deadlines(self, request: CompletionRequest) -> Deadlines:
        """How long a completion may take: the user's fixed ``timeout``, else enough for ``max_tokens`` at the
        measured (or assumed) speed plus the prompt, with a margin. A completion is not streamed, so its first
        byte is its whole answer: first-byte and total deadlines are the same."""
        if self.settings.timeout is not None:
            return Deadlines.fixed(self.settings.timeout)
        speed = self.tokens_per_second or ASSUMED_TOKENS_PER_SECOND
        prompt = self.estimate_tokens(request.prompt)
        seconds = DEADLINE_SLACK + DEADLINE_MARGIN * (prompt / ASSUMED_PROMPT_TOKENS_PER_SECOND + request.max_tokens / speed)
        how = "measured" if self.tokens_per_second else "assumed"
        why = (
            f"the completion deadline for max_tokens={request.max_tokens} at {speed:.1f} tokens/s ({how}) and ~{prompt} "
            "prompt tokens, with margin; `timeout` under [model] in config.toml fixes it instead"
        )
        return Deadlines(connect=CONNECT_TIMEOUT, first_byte=round(seconds), total=round(seconds), why=why)

    def _note_speed(self, completion: Completion, seconds: float) -> None:
        tokens = completion.usage.completion_tokens
        if tokens < MIN_MEASURED_TOKENS or seconds <= 0:
            return
        observed = tokens / seconds
        self.tokens_per_second = observed if self.tokens_per_second is None else (self.tokens_per_second + observed) / 2

    def count_tokens(self, text: str) -> int:
        cached = self.token_counts.get(text)
        if cached is not None:
            return cached
        count = self._count(text)
        self.token_counts.put(text, count)
        return count

    def check(self) -> BackendStatus:
        try:
            status = self._probe()
        except BackendError as err:
            status = BackendStatus(ok=False, endpoint=self.endpoint, detail=str(err))
        self.last_check = status
        if status.context_window:
            self._context = status.context_window
        return status

    def context_window(self) -> int | None:
        if self._context is None:
            status = self.check()
            self._context = status.context_window if status.ok else None
        return self._context or self.settings.context_window

    def close(self) -> None:
        self.http.close()

    # -- shared helpers -------------------------------------------------------------------------------

    def constraint_kind(self, request: CompletionRequest) -> ConstraintKind | None:
        """The first kind this backend enforces that the request's constraint carries, or ``None``."""
        if request.constraint is None:
            return None
        offered = request.constraint.kinds()
        for kind in self.capabilities.constraints:
            if kind in offered:
                return kind
        self._warn_once(
            "unusable",
            "%s cannot enforce a %s constraint (it takes %s); generating unconstrained, the output will be repair-parsed",
            self.server,
            "/".join(sorted(offered)) or "empty",
            "/".join(self.capabilities.constraints) or "none",
        )
        return None

    def _verify(self, completion: Completion, request: CompletionRequest, kind: ConstraintKind | None) -> Completion:
        """Fail closed: output that does not match the constraint was not constrained, whatever was sent."""
        if kind is None or request.constraint is None:
            return completion
        problem = violation(completion.text, request.constraint)
        if problem is None:
            return completion
        if completion.finish_reason == "length":
            log.info("%s: constrained output cut at max_tokens=%d (%s)", self.server, request.max_tokens, problem)
        else:
            self.ignored_constraints += 1
            self._warn_once(
                "ignored",
                "%s at %s ignored the %s constraint (output %s); treating its output as unconstrained",
                self.server,
                self.endpoint,
                kind,
                problem,
            )
        return completion.model_copy(update={"constrained_by": None})

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        warned: set[str] = self.__dict__.setdefault("_warned", set())
        if key in warned:
            log.debug(message, *args)
            return
        warned.add(key)
        log.warning(message, *args)

    def require(self, body: Any, path: str, *keys: str | int) -> Any:
        """``body[k1][k2]...`` or a ``BackendProtocolError`` naming the missing piece."""
        node = body
        for key in keys:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                raise self.http.protocol_error(path, "".join(f"[{k!r}]" for k in keys), body) from None
        return node

    def estimate_tokens(self, text: str, chars_per_token: float | None = None) -> int:
        """A character-based guess, for when the server reports no count."""
        return max(1, round(len(text) / (chars_per_token or DEFAULT_CHARS_PER_TOKEN))) if text else 0

    # -- what a dialect provides ----------------------------------------------------------------------

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        raise NotImplementedError

    def _count(self, text: str) -> int:
        raise NotImplementedError

    def _probe(self) -> BackendStatus:
        raise NotImplementedError


def openai_request(request: CompletionRequest, *, penalty_key: str, min_p: bool = True) -> dict[str, Any]:
    """The fields every OpenAI-style ``/v1/completions`` dialect shares; the repetition penalty's name and
    whether ``min_p`` is understood differ by server, constraints and ``model`` are each dialect's own."""
    s = request.sampling
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
    }
    if min_p:
        body["min_p"] = s.min_p
    body[penalty_key] = s.repeat_penalty
    if s.seed is not None:
        body["seed"] = s.seed
    return body


def openai_completion(backend: HTTPBackend, body: Any, request: CompletionRequest) -> Completion:
    """Text, finish reason and usage from an OpenAI-style ``/v1/completions`` answer.

    Usage is exact when the server sent it; otherwise it is estimated and ``exact`` is false. Cached and
    evaluated prompt tokens are known only when the server sends ``prompt_tokens_details`` (vLLM with
    ``--enable-prompt-tokens-details``); otherwise they stay ``None``, never 0.
    """
    path = backend.complete_path
    choice = backend.require(body, path, "choices", 0)
    text = backend.require(body, path, "choices", 0, "text")
    if not isinstance(choice, dict) or not isinstance(text, str):
        raise backend.http.protocol_error(path, "a string in choices[0].text", body)
    finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    usage = body.get("usage") if isinstance(body, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        prompt = usage["prompt_tokens"]
        measured = Usage(
            prompt_tokens=prompt,
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=cached if isinstance(cached, int) else None,
            evaluated_tokens=prompt - cached if isinstance(cached, int) else None,
            exact=True,
        )
    else:
        measured = Usage(
            prompt_tokens=backend.estimate_tokens(request.prompt),
            completion_tokens=backend.estimate_tokens(text),
            cached_tokens=None,
            exact=False,
        )
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return Completion(text=text, finish_reason=finish, usage=measured, model=model)


def first_model(backend: HTTPBackend, body: Any, path: str = "/v1/models") -> dict[str, Any]:
    """The first entry of an OpenAI-style model list (``{"data": [{"id": ...}, ...]}``)."""
    data = backend.require(body, path, "data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
        raise BackendError(
            f"{backend.server} at {backend.http.url(path)} lists no model: load a model in the server first.",
            endpoint=backend.endpoint,
        )
    return data[0]
