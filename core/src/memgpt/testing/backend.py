"""``BackendContract``: the tests every backend plugin must pass. Subclass it and provide a ``backend``
fixture that returns a working backend on a server (or model) that really generates::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self, my_server):
            return MyBackend(BackendSettings(endpoint=my_server.url))

What it checks: completion honours ``max_tokens`` and stop strings and reports usage; a constrained
completion is JSON matching the constraint, for every constraint kind the backend declares; a constraint
never leaks into the next request; ``count_tokens`` is positive and monotonic; ``check()`` reports the
model and context size, and for a server that is down returns a failed status instead of raising; every
error is a ``BackendError``. Override ``constraint`` to use another constraint (e.g. the call grammar),
and ``unreachable_backend`` if your backend cannot be built from ``BackendSettings(endpoint=...)``;
set ``needs_endpoint = False`` for in-process backends (the down-server tests are then skipped).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from memgpt.contract.backend import Backend, BackendSettings, Capabilities
from memgpt.contract.conformance import schema_violation
from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, Constraint, SamplingParams
from memgpt.errors import BackendError, BackendUnreachable
from memgpt.http import HTTPBackend

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no"]},
        "confident": {"type": "boolean"},
    },
    "required": ["answer", "confident"],
    "additionalProperties": False,
}

# The same language as ANSWER_SCHEMA, written by hand so the test does not depend on a converter.
ANSWER_GBNF = r"""root ::= "{" ws "\"answer\":" ws ("\"yes\"" | "\"no\"") "," ws "\"confident\":" ws ("true" | "false") ws "}"
ws ::= [ ]?
"""

#: Texts whose token counts backends must get exactly right: control tokens, non-ASCII, odd whitespace, a call.
TOKENIZER_SAMPLES = (
    "Hello, world!",
    "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    "naïve café, Grüße, 日本語のテキスト, emoji 🙂🚀",
    "  leading and trailing spaces \n\n\ttabs  ",
    '{"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hello!"}}',
    "word " * 300,
)
GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=7)


def dead_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a port just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class BackendContract:
    """Base class of every backend's contract tests (see the module docstring)."""

    #: In-process backends set this to False: there is no server that can be down.
    needs_endpoint: bool = True
    #: A prompt a small model continues with ordinary words for a dozen tokens.
    prompt: str = "The capital of France is Paris. The capital of Italy is Rome. The capital of Germany is"
    #: A prompt that invites the constrained answer.
    question: str = 'Answer with JSON like {"answer": "yes", "confident": true}.\nQuestion: Is the sky blue?\nAnswer: '
    constrained_max_tokens: int = 64

    @pytest.fixture
    def backend(self) -> Backend:
        pytest.fail(f"{type(self).__name__} must define a `backend` fixture returning a working backend")

    @pytest.fixture
    def unreachable_backend(self, backend: Backend) -> Backend | None:
        if not self.needs_endpoint:
            return None
        settings = BackendSettings(endpoint=dead_endpoint(), timeout=5.0, retries=0)
        return type(backend)(settings)  # type: ignore[call-arg]

    @pytest.fixture
    def constraint(self) -> Constraint:
        return Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA)

    # -- helpers --------------------------------------------------------------------------------------

    def greedy(self, backend: Backend, prompt: str, max_tokens: int, **fields: Any) -> Completion:
        return backend.complete(CompletionRequest(prompt=prompt, max_tokens=max_tokens, sampling=GREEDY, **fields))

    def assert_matches(self, completion: Completion, constraint: Constraint) -> None:
        value = json.loads(completion.text)  # fails the test with the text when it is not JSON
        schema = constraint.json_schema or ANSWER_SCHEMA
        problem = schema_violation(value, schema)
        assert problem is None, f"{completion.text!r}: {problem}"

    # -- capabilities ---------------------------------------------------------------------------------

    def test_capabilities_are_declared(self, backend: Backend) -> None:
        assert isinstance(backend.capabilities, Capabilities)
        assert set(backend.capabilities.constraints) <= {"gbnf", "json_schema"}
        assert len(set(backend.capabilities.constraints)) == len(backend.capabilities.constraints)

    # -- completion -----------------------------------------------------------------------------------

    @pytest.mark.model
    def test_complete_returns_text_and_usage(self, backend: Backend) -> None:
        completion = self.greedy(backend, self.prompt, 8)
        assert isinstance(completion, Completion)
        assert completion.text.strip()
        assert completion.finish_reason in ("stop", "length")
        assert completion.usage.prompt_tokens > 0
        assert 0 < completion.usage.completion_tokens <= 8
        assert completion.constrained_by is None

    @pytest.mark.model
    def test_max_tokens_bounds_the_completion(self, backend: Backend) -> None:
        completion = self.greedy(backend, self.prompt, 3)
        assert completion.finish_reason == "length"
        assert 0 < completion.usage.completion_tokens <= 3

    @pytest.mark.model
    def test_stop_string_ends_the_completion(self, backend: Backend) -> None:
        free = self.greedy(backend, self.prompt, 12).text
        cut = _stop_point(free)
        assert cut is not None, f"the model's continuation {free!r} has no second word to stop at"
        stop, index = cut
        stopped = self.greedy(backend, self.prompt, 12, stop=(stop, "\u2403never"))
        assert stopped.finish_reason == "stop"
        assert stop not in stopped.text
        assert stopped.text == free[:index], (free, stop)

    @pytest.mark.model
    def test_constrained_completion_matches_the_constraint(self, backend: Backend, constraint: Constraint) -> None:
        assert backend.capabilities.constraints, "backend declares no constraint kind"
        completion = self.greedy(backend, self.question, self.constrained_max_tokens, constraint=constraint)
        self.assert_matches(completion, constraint)
        assert completion.constrained_by == backend.capabilities.constraints[0]

    @pytest.mark.model
    def test_every_declared_constraint_kind_is_enforced(self, backend: Backend, constraint: Constraint) -> None:
        for kind in backend.capabilities.constraints:
            only = Constraint(gbnf=constraint.gbnf) if kind == "gbnf" else Constraint(json_schema=constraint.json_schema)
            completion = self.greedy(backend, self.question, self.constrained_max_tokens, constraint=only)
            self.assert_matches(completion, constraint)
            assert completion.constrained_by == kind

    @pytest.mark.model
    def test_a_constraint_does_not_leak_into_the_next_request(self, backend: Backend, constraint: Constraint) -> None:
        constrained = self.greedy(backend, self.question, self.constrained_max_tokens, constraint=constraint)
        self.assert_matches(constrained, constraint)
        free = self.greedy(backend, self.prompt, 6)
        assert free.constrained_by is None
        assert not free.text.lstrip().startswith('{"answer"')

    # -- tokens and probes ----------------------------------------------------------------------------

    @pytest.mark.model
    def test_count_tokens_is_positive_and_monotonic(self, backend: Backend) -> None:
        short = backend.count_tokens("Hello")
        longer = backend.count_tokens("Hello there, how are you today?")
        longest = backend.count_tokens("Hello there, how are you today? " * 20)
        assert 0 < short < longer < longest
        assert backend.count_tokens("Hello") == short  # stable (and served from the cache)

    @pytest.mark.model
    def test_check_reports_model_and_context(self, backend: Backend) -> None:
        status = backend.check()
        assert isinstance(status, BackendStatus)
        assert status.ok, status.detail
        assert status.model
        if backend.capabilities.context_probe:
            assert status.context_window and status.context_window > 0
            assert backend.context_window() == status.context_window
        line = status.line()
        assert "\n" not in line and line.startswith("✓")

    # -- a server that is down ------------------------------------------------------------------------

    def test_check_never_raises_for_a_down_server(self, unreachable_backend: Backend | None) -> None:
        if unreachable_backend is None:
            pytest.skip("in-process backend: no server to be down")
        status = unreachable_backend.check()
        assert not status.ok
        assert status.detail
        line = status.line()
        assert "\n" not in line and line.startswith("✗")

    def test_errors_from_a_down_server_are_backend_errors(self, unreachable_backend: Backend | None) -> None:
        if unreachable_backend is None:
            pytest.skip("in-process backend: no server to be down")
        with pytest.raises(BackendUnreachable) as caught:
            unreachable_backend.complete(CompletionRequest(prompt="Hi", max_tokens=2))
        assert caught.value.endpoint and caught.value.endpoint in str(caught.value)
        try:
            counted = unreachable_backend.count_tokens("Hello there")
        except BackendError:
            pass
        else:
            assert not unreachable_backend.capabilities.tokenizer, "an exact tokenizer cannot count without its server"
            assert counted > 0


def _stop_point(text: str) -> tuple[str, int] | None:
    """A word of ``text`` (after the first) whose first occurrence leaves non-blank text before it."""
    for word in text.split()[1:]:
        index = text.find(word)
        if index > 0 and text[:index].strip():
            return word, index
    return None


class HTTPFaultContract:
    """pytest-httpx tests of a server backend's error mapping; subclass it next to the request-body tests.

    Set ``backend_class`` and ``reply`` (a valid completion answer of the dialect whose text is
    ``"Hello"``) and ``empty_reply`` (the same with empty text). Override ``prepare(httpx_mock)`` when the
    backend probes something before its first completion (a model name, a version).
    """

    backend_class: type[HTTPBackend]
    reply: dict[str, Any]
    empty_reply: dict[str, Any]
    endpoint: str = "http://127.0.0.1:9"
    secret: str = "sk-test-5ecret-do-not-print"

    def make(self, **settings: Any) -> Any:
        settings.setdefault("retries", 0)
        settings.setdefault("timeout", 5.0)
        return self.backend_class(BackendSettings(endpoint=self.endpoint, options={"backoff": 0.0}, **settings))

    def prepare(self, httpx_mock: Any) -> None:
        """Register (optional, reusable) answers to whatever the backend asks before completing."""

    def complete_url(self) -> str:
        return self.endpoint + self.backend_class.complete_path

    def completion_requests(self, httpx_mock: Any) -> list[Any]:
        return [r for r in httpx_mock.get_requests() if str(r.url) == self.complete_url()]

    def request(self) -> CompletionRequest:
        return CompletionRequest(prompt="Say hello", max_tokens=4)

    def test_connection_refused_is_unreachable_and_retried(self, httpx_mock: Any) -> None:
        import httpx

        self.prepare(httpx_mock)
        httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"), url=self.complete_url(), is_reusable=True)
        with pytest.raises(BackendUnreachable) as caught:
            self.make(retries=2).complete(self.request())
        assert self.complete_url() in str(caught.value) and "running" in str(caught.value)
        assert len(self.completion_requests(httpx_mock)) == 3

    def test_generation_timeout_is_a_timeout_and_not_retried(self, httpx_mock: Any) -> None:
        import httpx

        from memgpt.errors import BackendTimeout

        self.prepare(httpx_mock)
        httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=self.complete_url())
        with pytest.raises(BackendTimeout) as caught:
            self.make(retries=2, timeout=3.0).complete(self.request())
        assert "3s" in str(caught.value) and self.complete_url() in str(caught.value)
        assert len(self.completion_requests(httpx_mock)) == 1

    def test_server_error_then_success_is_retried(self, httpx_mock: Any) -> None:
        self.prepare(httpx_mock)
        httpx_mock.add_response(url=self.complete_url(), status_code=500, json={"error": {"message": "slot busy"}})
        httpx_mock.add_response(url=self.complete_url(), json=self.reply)
        completion = self.make(retries=2).complete(self.request())
        assert completion.text == "Hello"
        assert len(self.completion_requests(httpx_mock)) == 2

    def test_client_error_is_not_retried_and_quotes_the_server(self, httpx_mock: Any) -> None:
        from memgpt.errors import BackendHTTPError

        self.prepare(httpx_mock)
        httpx_mock.add_response(url=self.complete_url(), status_code=400, json={"error": {"message": "failed to parse grammar"}})
        with pytest.raises(BackendHTTPError) as caught:
            self.make(retries=2).complete(self.request())
        assert caught.value.status_code == 400 and not caught.value.retryable
        assert "failed to parse grammar" in str(caught.value) and self.complete_url() in str(caught.value)
        assert len(self.completion_requests(httpx_mock)) == 1

    def test_truncated_json_body_is_a_protocol_error(self, httpx_mock: Any) -> None:
        from memgpt.errors import BackendProtocolError

        self.prepare(httpx_mock)
        cut = json.dumps(self.reply)[:-7].encode()
        httpx_mock.add_response(url=self.complete_url(), content=cut, headers={"content-type": "application/json"})
        with pytest.raises(BackendProtocolError) as caught:
            self.make().complete(self.request())
        assert "not JSON" in str(caught.value) and self.complete_url() in str(caught.value)

    def test_a_body_without_the_documented_fields_is_a_protocol_error(self, httpx_mock: Any) -> None:
        from memgpt.errors import BackendProtocolError

        self.prepare(httpx_mock)
        httpx_mock.add_response(url=self.complete_url(), json={"unexpected": "shape"})
        with pytest.raises(BackendProtocolError) as caught:
            self.make().complete(self.request())
        assert "unexpected" in str(caught.value)

    def test_empty_text_is_retried_then_an_empty_completion(self, httpx_mock: Any) -> None:
        from memgpt.errors import EmptyCompletion

        self.prepare(httpx_mock)
        httpx_mock.add_response(url=self.complete_url(), json=self.empty_reply, is_reusable=True)
        with pytest.raises(EmptyCompletion) as caught:
            self.make(retries=1).complete(self.request())
        assert "empty completion" in str(caught.value)
        assert len(self.completion_requests(httpx_mock)) == 2

    def test_api_key_goes_in_the_header_and_nowhere_else(self, httpx_mock: Any) -> None:
        from memgpt.errors import BackendHTTPError

        self.prepare(httpx_mock)
        echo = {"error": {"message": f"invalid api key {self.secret}"}}
        httpx_mock.add_response(url=self.complete_url(), status_code=401, json=echo)
        backend = self.make(api_key=self.secret)
        with pytest.raises(BackendHTTPError) as caught:
            backend.complete(self.request())
        sent = self.completion_requests(httpx_mock)[0]
        assert sent.headers["Authorization"] == f"Bearer {self.secret}"
        for shown in (str(caught.value), repr(caught.value), repr(backend), repr(backend.settings), str(caught.value.args)):
            assert self.secret not in shown
        assert "API key" in str(caught.value) and "MEMGPT_API_KEY_" in str(caught.value)

    def test_no_api_key_no_authorization_header(self, httpx_mock: Any) -> None:
        self.prepare(httpx_mock)
        httpx_mock.add_response(url=self.complete_url(), json=self.reply)
        self.make().complete(self.request())
        assert "Authorization" not in self.completion_requests(httpx_mock)[0].headers

    def test_check_of_a_refusing_server_is_a_failed_status(self, httpx_mock: Any) -> None:
        import httpx

        httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"), is_reusable=True)
        status = self.make(retries=1).check()
        assert not status.ok and "cannot connect" in status.detail
