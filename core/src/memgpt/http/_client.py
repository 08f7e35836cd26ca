"""Shared HTTP plumbing for server backends: one httpx client per backend, deadlines, bounded retries,
typed errors.

Every request runs under three deadlines (``Deadlines``): *connect* (the TCP connection), *first byte* (from
sending to the first byte of the answer: a server that accepts the connection and stays silent fails here) and
*total* (the whole answer). Probes and token counts get short ones; a completion's are derived from its
``max_tokens`` and the speed the backend measured (``http_backend``), unless the user fixed ``timeout``. A
*turn deadline* (``turn_deadline``, set per turn from ``[model] turn_timeout`` / ``--turn-timeout``) bounds
every request made inside it. Each message says which deadline fired and how to change it. A short request
that got no answer makes the next ones fail at once for a while instead of each waiting again.

Every failure between us and a model server becomes one of the ``BackendError`` subclasses of
``memgpt.errors``, with a message that names the URL and says what to do:

    httpx.ConnectError / ConnectTimeout / a dropped connection  → BackendUnreachable   (retried)
    httpx.ReadTimeout / WriteTimeout / PoolTimeout, a deadline  → BackendTimeout       (never retried)
    HTTP 4xx / 5xx                                               → BackendHTTPError     (5xx and 429 retried)
    HTTP 2xx whose body is not JSON, or lacks a documented field → BackendProtocolError

The API key travels only in the ``Authorization: Bearer`` header. It is never logged, never part of an
error message (a server that echoes it back gets it replaced by ``***``) and never in a ``repr``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from memgpt.errors import (
    BackendError,
    BackendHTTPError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnreachable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A local server accepts a connection at once, a remote one within a few seconds.
CONNECT_TIMEOUT = 5.0
#: Probes and token counts (health, props, model lists, tokenize) answer at once on a working server.
PROBE_TIMEOUT = 10.0
#: After a short request got no answer, further short requests fail at once for this long.
SILENT_MEMORY = 60.0
MAX_BACKOFF = 8.0
_SNIPPET = 300


@dataclass(frozen=True)
class Deadlines:
    """The limits of one request, in seconds. ``first_byte`` runs from sending to the first byte of the
    answer (for a completion that is not streamed, the whole generation); ``total`` to its last byte.
    ``why`` says how they were chosen, for the message when one fires."""

    connect: float = CONNECT_TIMEOUT
    first_byte: float = PROBE_TIMEOUT
    total: float = PROBE_TIMEOUT
    why: str = "the probe deadline"

    @classmethod
    def probe(cls) -> Deadlines:
        """A probe or a token count: a working server answers at once."""
        return cls(connect=CONNECT_TIMEOUT, first_byte=PROBE_TIMEOUT, total=PROBE_TIMEOUT, why="the probe deadline")

    @classmethod
    def fixed(cls, seconds: float) -> Deadlines:
        """The user's own ``timeout``: one limit for everything."""
        return cls(
            connect=min(seconds, CONNECT_TIMEOUT), first_byte=seconds, total=seconds, why="`timeout` under [model] in config.toml"
        )

    def within(self, seconds: float | None) -> Deadlines:
        """These deadlines, none longer than ``seconds`` (a fixed user timeout)."""
        if seconds is None:
            return self
        return Deadlines(
            min(self.connect, seconds),
            min(self.first_byte, seconds),
            min(self.total, seconds),
            self.why if self.total <= seconds else Deadlines.fixed(seconds).why,
        )


_TURN: ContextVar[tuple[float, float] | None] = ContextVar("memgpt_turn_deadline", default=None)


@contextlib.contextmanager
def turn_deadline(seconds: float | None) -> Iterator[None]:
    """Every backend request made inside ends at most ``seconds`` from now (``None``: no turn deadline)."""
    if seconds is None:
        yield
        return
    end = time.monotonic() + seconds
    outer = _TURN.get()
    token = _TURN.set(outer if outer is not None and outer[0] <= end else (end, seconds))
    try:
        yield
    finally:
        _TURN.reset(token)


def turn_time_left() -> tuple[float, float] | None:
    """``(seconds left, seconds allowed)`` of the current turn deadline, or ``None`` outside one."""
    current = _TURN.get()
    return None if current is None else (current[0] - time.monotonic(), current[1])


def normalize_endpoint(url: str, *, strip_suffixes: tuple[str, ...] = ()) -> str:
    """``localhost:5001/api/`` → ``http://localhost:5001``: add a missing scheme, drop a trailing slash
    and any API prefix the user pasted along (``/v1``, ``/api``) that the backend adds itself."""
    url = url.strip()
    if not url:
        raise BackendError("no endpoint given: set one with `memgpt configure` or --model-endpoint URL")
    if "://" not in url:
        url = "http://" + url
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise BackendError(f"endpoint {url!r} is not a valid URL ({exc}); expected e.g. http://localhost:8080") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BackendError(f"endpoint {url!r} is not an http(s) URL with a host; expected e.g. http://localhost:8080")
    url = url.rstrip("/")
    for suffix in strip_suffixes:
        if url.endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
    return url


def retry_call(
    fn: Callable[[], T],
    *,
    retries: int,
    backoff: float,
    what: str,
    retry_timeouts: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a retryable ``BackendError`` try again up to ``retries`` times, waiting
    ``backoff * 2**attempt`` seconds (at most ``MAX_BACKOFF``). Other errors propagate at once.

    ``retry_timeouts=False`` is for generation: a server that timed out is most likely still generating,
    and a second request would only queue behind the first. A missed deadline is never retried either way
    (its error is marked not retryable): a silent server stays silent, and waiting twice only hides that.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except BackendError as err:
            again = err.retryable and (retry_timeouts or not isinstance(err, BackendTimeout))
            if not again or attempt == retries:
                raise
            delay = min(backoff * (2**attempt), MAX_BACKOFF)
            # Not a warning: when every retry fails the error says it all, once.
            log.info("%s failed (%s); retry %d of %d in %.1fs", what, type(err).__name__, attempt + 1, retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


class HTTPClient:
    """One ``httpx.Client`` for one server, with the deadlines, error mapping and retry policy above.

    ``server`` is the human name used in messages ("llama-server", "koboldcpp"); ``backend`` the registry
    name, used to point at the right ``MEMGPT_API_KEY_<BACKEND>`` variable. ``timeout``, when set, is the
    user's fixed limit for every request; ``None`` lets each request carry its own ``Deadlines``.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        server: str,
        backend: str,
        api_key: SecretStr | None = None,
        timeout: float | None = None,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ):
        self.endpoint = endpoint
        self.server = server
        self.backend = backend
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._secret = api_key.get_secret_value() if api_key is not None else ""
        #: When a short request last went unanswered, and what the message said.
        self._silent: tuple[float, str] | None = None
        headers = {"Accept": "application/json"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        self._client = httpx.Client(
            base_url=endpoint,
            headers=headers,
            timeout=httpx.Timeout(PROBE_TIMEOUT, connect=CONNECT_TIMEOUT),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"HTTPClient({self.server} at {self.endpoint!r}, api_key={'set' if self._secret else 'none'})"

    def url(self, path: str) -> str:
        return self.endpoint + path

    def close(self) -> None:
        self._client.close()

    # -- requests -------------------------------------------------------------------------------------

    def get_json(self, path: str, *, deadlines: Deadlines | None = None, retry: bool = True) -> Any:
        """GET ``path`` and return its JSON body (a probe: short deadlines unless given others)."""
        return self._send("GET", path, None, deadlines, retry, retry_timeouts=False)

    def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        deadlines: Deadlines | None = None,
        retry: bool = True,
        retry_timeouts: bool = False,
    ) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer. Without ``deadlines`` it is a short
        request (a token count) with the probe deadlines; a completion passes its own."""
        return self._send("POST", path, body, deadlines, retry, retry_timeouts=retry_timeouts)

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        deadlines: Deadlines | None,
        retry: bool,
        *,
        retry_timeouts: bool,
    ) -> Any:
        def once() -> Any:
            return self._once(method, path, body, deadlines)

        if not retry:
            return once()
        return retry_call(
            once, retries=self.retries, backoff=self.backoff, what=f"{method} {self.url(path)}", retry_timeouts=retry_timeouts
        )

    def _once(self, method: str, path: str, body: Mapping[str, Any] | None, deadlines: Deadlines | None) -> Any:
        url = self.url(path)
        short = deadlines is None
        limits = (deadlines or Deadlines.probe()).within(self.timeout)
        if short and self._silent is not None and time.monotonic() - self._silent[0] < SILENT_MEMORY:
            ago = time.monotonic() - self._silent[0]
            raise self._timeout(f"{self._silent[1]} ({ago:.0f}s ago; not asking again for {SILENT_MEMORY - ago:.0f}s)")
        turn = turn_time_left()
        total, which = limits.total, "total"
        if turn is not None and turn[0] < total:
            total, which = turn[0], "turn"
            if total <= 0:
                raise self._turn_timeout(url, turn[1])
        first_byte = min(limits.first_byte, total)
        connect = min(limits.connect, total)
        started = time.monotonic()
        request = self._client.build_request(
            method,
            path,
            json=dict(body) if body is not None else None,
            timeout=httpx.Timeout(first_byte, connect=connect, pool=connect),
        )
        response: httpx.Response | None = None
        try:
            try:
                response = self._client.send(request, stream=True)
            except httpx.ReadTimeout:
                if which == "turn" and first_byte >= total:
                    raise self._turn_timeout(url, turn[1] if turn else total) from None
                message = self._first_byte_message(url, first_byte, limits, short)
                if short:
                    self._silent = (time.monotonic(), message)
                raise self._timeout(message) from None
            chunks = []
            for chunk in response.iter_raw():  # raw: the Response built below decodes it once
                chunks.append(chunk)
                if time.monotonic() - started > total:
                    if which == "turn":
                        raise self._turn_timeout(url, turn[1] if turn else total)
                    raise self._timeout(
                        f"{self.server} at {url} was still sending its answer after {total:g}s (total deadline, "
                        f"{limits.why}): the server is overloaded or the answer is huge; check its console."
                    )
            # A plain (read) response from here on, so that .text and .json() work in the messages.
            answer = httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks), request=request)
        except httpx.ConnectTimeout:
            raise BackendUnreachable(
                f"no connection to {self.server} at {url} within {connect:g}s (connect deadline): is the host up and "
                "the port open? Start the server or fix the endpoint with `memgpt configure`.",
                endpoint=self.endpoint,
            ) from None
        except httpx.ReadTimeout:  # the answer began, then stopped
            raise self._timeout(
                f"{self.server} at {url} started answering, then sent nothing for {first_byte:g}s ({limits.why}): "
                "the server is stuck or overloaded; check its console."
            ) from None
        except httpx.TimeoutException:  # writing the request or waiting for a pooled connection
            raise self._timeout(
                f"{self.server} at {url} did not take the request within {connect:g}s: the server is stuck or "
                "overloaded; check its console."
            ) from None
        except httpx.ConnectError as exc:
            raise BackendUnreachable(
                f"cannot connect to {self.server} at {url} ({self._reason(exc)}): is it running? Start it, or fix "
                "the endpoint with `memgpt configure` / --model-endpoint.",
                endpoint=self.endpoint,
            ) from None
        except httpx.TransportError as exc:  # connection dropped mid-answer, bad chunking, ...
            raise BackendUnreachable(
                f"the connection to {self.server} at {url} broke ({type(exc).__name__}: {self._reason(exc)}): "
                "the server may have crashed or restarted; check its console.",
                endpoint=self.endpoint,
            ) from None
        finally:
            if response is not None:
                response.close()
        if short:
            self._silent = None
        log.debug("%s %s -> HTTP %d in %.2fs", method, url, answer.status_code, time.monotonic() - started)
        if answer.status_code >= 400:
            raise self._http_error(answer, url)
        try:
            return answer.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendProtocolError(
                f"{self.server} at {url} answered HTTP {answer.status_code} with a body that is not JSON "
                f"({len(answer.content)} bytes: {self._snippet(answer.text)!r}): is {self.endpoint} really a "
                f"{self.server} server, and nothing (a proxy) cut the answer short?",
                endpoint=self.endpoint,
            ) from None

    def _first_byte_message(self, url: str, seconds: float, limits: Deadlines, short: bool) -> str:
        if short:
            return (
                f"{self.server} at {url} accepted the connection but sent nothing within {seconds:g}s (first-byte "
                "deadline of a probe): the server is stuck, overloaded or not a model server; check its console."
            )
        return (
            f"{self.server} at {url} did not answer within {seconds:g}s ({limits.why}): the model may be too slow "
            "for this prompt or the server is stuck. Check the server's console, or set a longer `timeout` under "
            "[model] in config.toml."
        )

    def _timeout(self, message: str) -> BackendTimeout:
        err = BackendTimeout(message, endpoint=self.endpoint)
        err.retryable = False  # a missed deadline is reported, not waited out again
        return err

    def _turn_timeout(self, url: str, seconds: float) -> BackendTimeout:
        return self._timeout(
            f"the turn deadline of {seconds:g}s passed while waiting for {self.server} at {url}: raise it with "
            "--turn-timeout SECONDS or `turn_timeout` under [model] in config.toml, or leave it unset."
        )

    # -- messages -------------------------------------------------------------------------------------

    def _http_error(self, response: httpx.Response, url: str) -> BackendHTTPError:
        code = response.status_code
        detail = self._server_detail(response)
        said = f" The server said: {detail}" if detail else ""
        if code in (401, 403):
            from memgpt.config import api_key_env_var

            hint = (
                f"the API key is missing or wrong. Set it with `memgpt configure --api-key KEY` or the "
                f"environment variable {api_key_env_var(self.backend)}."
            )
        elif code == 404:
            hint = f"this path does not exist there: is {self.endpoint} really a {self.server} server? Check the endpoint and backend type in `memgpt configure`."
        elif code == 429 or code == 503:
            hint = "the server is busy or still loading the model: wait until it is ready and try again."
        elif code >= 500:
            hint = "the server failed while answering: check its console or log."
        else:
            hint = "it rejected the request memgpt built; a grammar or schema this server version does not accept is the usual cause."
        return BackendHTTPError(
            f"{self.server} at {url} answered HTTP {code}: {hint}{said}", status_code=code, endpoint=self.endpoint
        )

    def _server_detail(self, response: httpx.Response) -> str:
        """The server's own explanation, from the usual JSON error shapes or the raw text."""
        text = response.text
        try:
            body = response.json()
        except ValueError:
            return self._snippet(text.strip())
        if isinstance(body, dict):
            for key in ("error", "detail", "message", "msg"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message") or value.get("msg") or json.dumps(value)
                if value:
                    return self._snippet(value if isinstance(value, str) else json.dumps(value))
        return self._snippet(text.strip())

    def _snippet(self, text: str) -> str:
        text = self._redact(text)
        return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"

    def _reason(self, exc: Exception) -> str:
        return self._redact(str(exc)) or "no detail"

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def protocol_error(self, path: str, what: str, body: Any) -> BackendProtocolError:
        """A 2xx answer that lacks what the dialect documents (``what``), with a glimpse of the body."""
        shown = self._snippet(json.dumps(body, ensure_ascii=False) if not isinstance(body, str) else body)
        return BackendProtocolError(
            f"{self.server} at {self.url(path)} answered without {what} (got {shown}): is {self.endpoint} a "
            f"{self.server} server of a supported version? Check the endpoint type in `memgpt configure`.",
            endpoint=self.endpoint,
        )
