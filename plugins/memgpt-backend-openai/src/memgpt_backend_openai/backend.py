"""Any OpenAI-compatible completions server: ``POST /v1/completions`` with the wrapper's raw prompt.

Servers that call themselves OpenAI-compatible agree on ``/v1/completions`` and ``GET /v1/models`` and on
little else, so what differs is found out, not assumed:

- **the constraint.** llama.cpp's servers (llama-server, llama-cpp-python, LocalAI) read GBNF from a
  ``grammar`` field, vLLM ≥ 0.11 reads ``structured_outputs: {"grammar": …}`` or ``{"json": schema}``,
  vLLM and LM Studio read the OpenAI-style ``response_format: {"type": "json_schema", …}``, llama-server a
  ``json_schema`` field. A server that does not know a field mostly ignores it with HTTP 200 (vLLM,
  llama-server, llama-cpp-python): the model then writes freely. No server says which fields it honours, so
  the backend **probes** once per server and process: a tiny completion under each candidate field, constrained
  to one odd string no model writes unasked (``Zx7Qv``). A field answered with that string is honoured; one
  rejected (400 / 422) or answered with anything else is not. The first honoured field of each kind is used
  and the others are never sent. When none is honoured, no constraint is sent, ``capabilities.constraints``
  is empty (the agent parses with repair) and a constrained request is reported unconstrained: fail closed.
  Every constrained answer is still checked against its constraint (``HTTPBackend``).
- **token counts.** ``POST /tokenize`` (llama-server reads ``content``, vLLM ``prompt``) or
  llama-cpp-python's ``POST /extras/tokenize/count``, whichever answers; otherwise an estimate from
  characters, corrected from every answer's usage, and ``capabilities.tokenizer`` is false.
- **the context size.** A field of the model's ``/v1/models`` entry (vLLM ``max_model_len``, llama-server
  ``meta.n_ctx``, TabbyAPI ``parameters.max_seq_len``, ``context_length``), else llama-server's ``/props``,
  else the trained ``meta.n_ctx_train``; otherwise ``capabilities.context_probe`` is false and the
  configured ``context_window`` applies.

What was learned about a server is kept per endpoint and model for the life of the process (``SERVERS``),
so every backend opened on it (an agent, ``memgpt doctor``, a test) probes it once.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from memgpt.http import DEFAULT_CHARS_PER_TOKEN, HTTPBackend, openai_completion, openai_request
from memgpt.plugin import (
    BackendError,
    BackendHTTPError,
    BackendProtocolError,
    BackendSettings,
    BackendStatus,
    Capabilities,
    Completion,
    CompletionRequest,
    Constraint,
    ConstraintKind,
    SamplingParams,
)
from memgpt_backend_openai import OPENAI

log = logging.getLogger(__name__)

#: The fields a constraint can travel in, per kind, in the order they are probed.
CANDIDATES: dict[ConstraintKind, tuple[str, ...]] = {
    "gbnf": ("grammar", "structured_outputs.grammar"),
    "json_schema": ("response_format", "structured_outputs.json", "json_schema"),
}
#: The probe's answer: no model writes it unless a constraint makes it.
PROBE_TEXT = "Zx7Qv"
PROBE_GBNF = f'root ::= "{PROBE_TEXT}"'
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"q": {"type": "string", "enum": [PROBE_TEXT]}},
    "required": ["q"],
    "additionalProperties": False,
}
PROBE_PROMPT = "The weather today is"
#: Tokens a probe may use: ``Zx7Qv`` takes at most 5, ``{"q": "Zx7Qv"}`` about 10 plus the free whitespace a
#: JSON-schema engine may let the model write. An ignored field costs this many unconstrained tokens, once.
PROBE_MAX_TOKENS: dict[ConstraintKind, int] = {"gbnf": 12, "json_schema": 24}
PROBE_SAMPLING = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=7)
#: Counted to find the tokenizer endpoint.
TOKENIZE_SAMPLE = "Hello, world"
#: Prompts shorter than this say little about the model's characters per token.
MIN_PROMPT_TOKENS_FOR_RATIO = 16

TokenizerStyle = Literal["llama.cpp", "vllm", "llama-cpp-python"]
TOKENIZERS: tuple[TokenizerStyle, ...] = ("llama.cpp", "vllm", "llama-cpp-python")
TOKENIZE_PATHS: dict[TokenizerStyle, str] = {
    "llama.cpp": "/tokenize",
    "vllm": "/tokenize",
    "llama-cpp-python": "/extras/tokenize/count",
}


@dataclass
class ServerFacts:
    """What was learned about one server (endpoint and configured model). ``None``: not asked yet (or the
    question failed, and is asked again next time)."""

    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    entry: dict[str, Any] | None = None  # its /v1/models entry; {} when it lists none
    context: tuple[int | None, str] | None = None  # (size or None, where it came from)
    props: dict[str, Any] | None = None  # llama-server's /props; {} where there is none
    tokenizer: tuple[TokenizerStyle | None, int] | None = None  # (style, tokens it adds to every count)
    fields: dict[ConstraintKind, str] | None = None  # the honoured field of each kind
    findings: tuple[str, ...] = ()  # what the probe saw, per field


#: Every server asked in this process, by (endpoint, configured model).
SERVERS: dict[tuple[str, str | None], ServerFacts] = {}
_SERVERS_LOCK = threading.Lock()


def forget_servers() -> None:
    """Forget what was learned about every server (the next backend probes again)."""
    with _SERVERS_LOCK:
        SERVERS.clear()


def carry(name: str, constraint: Constraint) -> dict[str, Any]:
    """The request fields that carry ``constraint`` in field ``name`` (one of ``CANDIDATES``)."""
    if name == "grammar":
        return {"grammar": constraint.gbnf}
    if name == "structured_outputs.grammar":
        return {"structured_outputs": {"grammar": constraint.gbnf}}
    if name == "structured_outputs.json":
        return {"structured_outputs": {"json": constraint.json_schema}}
    if name == "json_schema":
        return {"json_schema": constraint.json_schema}
    if name == "response_format":
        schema = {"name": "memgpt_output", "strict": True, "schema": constraint.json_schema}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    raise ValueError(f"unknown constraint field {name!r}")


class OpenAIBackend(HTTPBackend):
    """Backend ``openai``: any OpenAI-compatible completions server."""

    spec = OPENAI
    server: ClassVar[str] = "OpenAI-compatible server"
    complete_path: ClassVar[str] = "/v1/completions"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN
        with _SERVERS_LOCK:
            self.facts = SERVERS.setdefault((self.endpoint, settings.model), ServerFacts())

    # -- what this server can do ----------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """What this server was found to do; before it could be asked (it is down), what the backend can
        do at best, so that an agent opened early still builds its constraint (sent only once probed)."""
        try:
            kinds = self.constraint_fields()
            exact = self.tokenizer_style() is not None
            context = self._context_info()[0] is not None
        except BackendError as err:
            log.debug("%s at %s not probed yet (%s)", self.server, self.endpoint, err)
            return OPENAI.capabilities
        order = tuple(kind for kind in CANDIDATES if kind in kinds)
        return Capabilities(constraints=order, tokenizer=exact, context_probe=context, prefix_cache=True)

    def constraint_fields(self) -> dict[ConstraintKind, str]:
        """The field that carries each constraint kind this server honours (probed once, see the module)."""
        facts = self.facts
        with facts.lock:
            if facts.fields is None:
                fields: dict[ConstraintKind, str] = {}
                findings = []
                for kind, names in CANDIDATES.items():
                    for name in names:
                        verdict = self._probe_field(name, kind)
                        findings.append(f"{name}: {verdict}")
                        if verdict == "honoured":
                            fields[kind] = name
                            break
                facts.fields, facts.findings = fields, tuple(findings)
                self._log_fields(fields, facts.findings)
            return dict(facts.fields)

    def constraint_report(self) -> str:
        """One line: which field carries which kind, and what the probe saw of each field it tried."""
        fields = self.constraint_fields()
        chosen = ", ".join(f"{kind} via `{name}`" for kind, name in fields.items()) or "none honoured"
        return f"{chosen} (probed: {'; '.join(self.facts.findings)})"

    def _probe_field(self, name: str, kind: ConstraintKind) -> str:
        constraint = Constraint(gbnf=PROBE_GBNF) if kind == "gbnf" else Constraint(json_schema=PROBE_SCHEMA)
        request = CompletionRequest(prompt=PROBE_PROMPT, max_tokens=PROBE_MAX_TOKENS[kind], sampling=PROBE_SAMPLING)
        body = {**self._body(request), **carry(name, constraint)}
        try:
            answer = self.http.post_json(self.complete_path, body, deadlines=self.completion_deadlines(request))
        except BackendHTTPError as err:
            if err.status_code in (400, 422):
                return f"rejected (HTTP {err.status_code})"
            raise
        completion = openai_completion(self, answer, request)
        if _shows_probe(completion, kind):
            return "honoured"
        return f"ignored (answered {completion.text[:32]!r})"

    def _log_fields(self, fields: dict[ConstraintKind, str], findings: tuple[str, ...]) -> None:
        if fields:
            chosen = ", ".join(f"{kind} in `{name}`" for kind, name in fields.items())
            log.info("%s at %s: constraints go %s (probed: %s)", self.server, self.endpoint, chosen, "; ".join(findings))
            return
        log.warning(
            "%s at %s honours none of the constraint fields memgpt knows (%s): generating unconstrained; every "
            "answer is checked and repair-parsed",
            self.server,
            self.endpoint,
            "; ".join(findings),
        )

    # -- completion -----------------------------------------------------------------------------------

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        body = openai_request(request, penalty_key=self._penalty_key())
        model = self.model()
        if model:
            body["model"] = model
        return body

    def _payload(self, request: CompletionRequest, constraint: Constraint | None) -> dict[str, Any]:
        body = self._body(request)
        if constraint is not None:
            fields = self.constraint_fields()
            for kind in constraint.kinds():  # the one kind chosen
                body.update(carry(fields[kind], constraint))
        return body

    def _parse(self, body: Any, request: CompletionRequest) -> Completion:
        completion = openai_completion(self, body, request)
        usage = completion.usage
        if usage.exact and usage.prompt_tokens >= MIN_PROMPT_TOKENS_FOR_RATIO:
            self.chars_per_token = len(request.prompt) / usage.prompt_tokens
        return completion

    def _penalty_key(self) -> str:
        """vLLM and TabbyAPI name the repetition penalty ``repetition_penalty``; llama.cpp's servers and
        LocalAI ``repeat_penalty``. A server ignores the name it does not know."""
        entry = self._entry()
        owner = str(entry.get("owned_by", "")).lower()
        return "repetition_penalty" if owner in ("vllm", "tabbyapi") or "max_model_len" in entry else "repeat_penalty"

    def model(self) -> str | None:
        """The configured model, else the first one the server lists (None: it lists none)."""
        if self.settings.model:
            return self.settings.model
        model = self._entry().get("id")
        return str(model) if model else None

    # -- token counts ---------------------------------------------------------------------------------

    def tokenizer_style(self) -> TokenizerStyle | None:
        """Which tokenizer endpoint this server has (looked up once), or None: counts are estimates."""
        facts = self.facts
        with facts.lock:
            if facts.tokenizer is None:
                facts.tokenizer = self._find_tokenizer()
                style = facts.tokenizer[0]
                if style is None:
                    log.info("%s at %s has no tokenizer endpoint: token counts are estimates", self.server, self.endpoint)
                else:
                    log.info("%s at %s counts tokens at %s (%s)", self.server, self.endpoint, TOKENIZE_PATHS[style], style)
            return facts.tokenizer[0]

    def _find_tokenizer(self) -> tuple[TokenizerStyle | None, int]:
        for style in TOKENIZERS:
            try:
                count = self._count_with(style, TOKENIZE_SAMPLE)
            except BackendHTTPError as err:
                if err.status_code in (401, 403, 429) or err.status_code >= 500:
                    raise
                continue  # 404, 405, 400 / 422 (another dialect's body): not this one
            except BackendProtocolError:
                continue  # an answer without the count (HTML, another shape): not this one
            if count > 0:
                # llama-cpp-python counts with the special tokens the model adds (a BOS): that many come off.
                return style, self._count_with(style, "") if style == "llama-cpp-python" else 0
        return None, 0

    def _count_with(self, style: TokenizerStyle, text: str) -> int:
        path = TOKENIZE_PATHS[style]
        model = self.model()
        if style == "llama.cpp":  # parse_special: the wrapper's control tokens are the single tokens sent
            body = self.http.post_json(path, {"content": text, "add_special": False, "parse_special": True})
            tokens = self.require(body, path, "tokens")
            if not isinstance(tokens, list) or (text and not tokens):  # vLLM's body to llama-server: []
                raise self.http.protocol_error(path, "a list of tokens in 'tokens'", body)
            return len(tokens)
        if style == "vllm":
            request: dict[str, Any] = {"prompt": text, "add_special_tokens": False}
        else:
            request = {"input": text}
        if model:
            request["model"] = model
        count = self.require(self.http.post_json(path, request), path, "count")
        if not isinstance(count, int):
            raise self.http.protocol_error(path, "an integer in 'count'", count)
        return count

    def count_tokens(self, text: str) -> int:
        if self.tokenizer_style() is None:  # an estimate whose ratio keeps improving: not cached
            return self.estimate_tokens(text)
        return super().count_tokens(text)

    def _count(self, text: str) -> int:
        style = self.tokenizer_style()
        if style is None:
            return self.estimate_tokens(text)
        assert self.facts.tokenizer is not None
        return max(0, self._count_with(style, text) - self.facts.tokenizer[1])

    def estimate_tokens(self, text: str, chars_per_token: float | None = None) -> int:
        return math.ceil(len(text) / (chars_per_token or self.chars_per_token)) if text else 0

    # -- model, context, template ---------------------------------------------------------------------

    def _entry(self) -> dict[str, Any]:
        """This model's ``/v1/models`` entry (asked once); ``{}`` for a server without the list."""
        facts = self.facts
        with facts.lock:
            if facts.entry is None:
                try:
                    facts.entry = self._pick(self.http.get_json("/v1/models"))
                except BackendHTTPError as err:
                    if err.status_code not in (404, 405):
                        raise
                    facts.entry = {}
            return facts.entry

    def _pick(self, listing: Any) -> dict[str, Any]:
        data = self.require(listing, "/v1/models", "data")
        entries = [e for e in data if isinstance(e, dict) and "id" in e] if isinstance(data, list) else []
        wanted = [e for e in entries if e["id"] == self.settings.model]
        if not entries and not self.settings.model:
            raise BackendError(
                f"{self.server} at {self.http.url('/v1/models')} lists no model: load a model in the server first, "
                "or name one with `memgpt configure --model`.",
                endpoint=self.endpoint,
            )
        if self.settings.model:  # a configured model not listed: describe it, not another one
            return (wanted or [{"id": self.settings.model}])[0]
        return entries[0]

    def _props(self) -> dict[str, Any]:
        """llama-server's ``/props`` (asked once); ``{}`` elsewhere."""
        facts = self.facts
        with facts.lock:
            if facts.props is None:
                try:
                    props = self.http.get_json("/props")
                except (BackendHTTPError, BackendProtocolError) as err:
                    if isinstance(err, BackendHTTPError) and err.status_code in (401, 403):
                        raise
                    props = {}
                facts.props = props if isinstance(props, dict) else {}
            return facts.props

    def _context_info(self) -> tuple[int | None, str]:
        facts = self.facts
        with facts.lock:
            if facts.context is None:
                facts.context = self._find_context()
            return facts.context

    def _find_context(self) -> tuple[int | None, str]:
        entry = self._entry()
        meta: dict[str, Any] = entry["meta"] if isinstance(entry.get("meta"), dict) else {}
        parameters: dict[str, Any] = entry["parameters"] if isinstance(entry.get("parameters"), dict) else {}
        found = [
            (entry.get("max_model_len"), "/v1/models max_model_len"),
            (meta.get("n_ctx"), "/v1/models meta.n_ctx"),
            (parameters.get("max_seq_len"), "/v1/models parameters.max_seq_len"),
            (entry.get("context_length"), "/v1/models context_length"),
            (entry.get("loaded_context_length"), "/v1/models loaded_context_length"),
        ]
        for size, where in found:
            if isinstance(size, int) and size > 0:
                return size, where
        props = self._props()
        settings = props.get("default_generation_settings")
        for size, where in (
            (settings.get("n_ctx") if isinstance(settings, dict) else None, "/props n_ctx"),
            (props.get("n_ctx"), "/props n_ctx"),
            (meta.get("n_ctx_train"), "/v1/models meta.n_ctx_train (trained; the server may run with less)"),
        ):
            if isinstance(size, int) and size > 0:
                return size, where
        return None, "not reported: the configured context_window applies"

    def _probe(self) -> BackendStatus:
        facts = self.facts
        try:
            entry = self._pick(self.http.get_json("/v1/models"))  # asked afresh: check() is a live probe
        except BackendHTTPError as err:
            if err.status_code not in (404, 405) or not self.settings.model:
                raise
            entry = {"id": self.settings.model}  # a server without the list: the configured model
        with facts.lock:
            facts.entry, facts.context = entry, None
        context, where = self._context_info()
        return BackendStatus(
            ok=True, endpoint=self.endpoint, model=str(entry["id"]), context_window=context, detail=f"context: {where}"
        )

    def chat_template(self) -> str | None:
        try:
            template = self._props().get("chat_template")
        except BackendError:
            return None
        return template if isinstance(template, str) and template else None


def _shows_probe(completion: Completion, kind: ConstraintKind) -> bool:
    """Whether a probe's answer is the one only its constraint allows."""
    text = completion.text.strip()
    if kind == "gbnf":
        return text == PROBE_TEXT
    try:
        return bool(json.loads(text) == {"q": PROBE_TEXT})
    except ValueError:
        # Cut at max_tokens in the free whitespace a JSON-schema engine allows: still the constrained shape.
        squeezed = "".join(text.split())
        return (
            completion.finish_reason == "length" and squeezed.startswith("{") and f'{{"q":"{PROBE_TEXT}"}}'.startswith(squeezed)
        )
