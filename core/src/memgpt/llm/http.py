"""Shared HTTP plumbing for server backends: one httpx client per backend, bounded retries, typed errors.

Every failure between us and a model server becomes one of the ``BackendError`` subclasses of
``memgpt.errors``, with a message that names the URL and says what to do:

    httpx.ConnectError / ConnectTimeout / a dropped connection  → BackendUnreachable   (retried)
    httpx.ReadTimeout / WriteTimeout / PoolTimeout               → BackendTimeout       (retried on probes only)
    HTTP 4xx / 5xx                                               → BackendHTTPError     (5xx and 429 retried)
    HTTP 2xx whose body is not JSON, or lacks a documented field → BackendProtocolError

The API key travels only in the ``Authorization: Bearer`` header. It is never logged, never part of an
error message (a server that echoes it back gets it replaced by ``***``) and never in a ``repr``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
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

#: Probes (health, props, model lists) should answer at once; a long wait there only delays the user.
PROBE_TIMEOUT = 10.0
MAX_BACKOFF = 8.0
_SNIPPET = 300


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
    and a second request would only queue behind the first.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except BackendError as err:
            again = err.retryable and (retry_timeouts or not isinstance(err, BackendTimeout))
            if not again or attempt == retries:
                raise
            delay = min(backoff * (2**attempt), MAX_BACKOFF)
            log.warning("%s failed (%s); retry %d of %d in %.1fs", what, type(err).__name__, attempt + 1, retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


class HTTPClient:
    """One ``httpx.Client`` for one server, with the error mapping and retry policy above.

    ``server`` is the human name used in messages ("llama-server", "koboldcpp"); ``backend`` the registry
    name, used to point at the right ``MEMGPT_API_KEY_<BACKEND>`` variable.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        server: str,
        backend: str,
        api_key: SecretStr | None = None,
        timeout: float = 120.0,
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
        headers = {"Accept": "application/json"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        self._client = httpx.Client(
            base_url=endpoint,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, PROBE_TIMEOUT)),
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

    def get_json(self, path: str, *, timeout: float | None = PROBE_TIMEOUT, retry: bool = True) -> Any:
        """GET ``path`` and return its JSON body; probes default to a short timeout."""
        return self._send("GET", path, None, timeout, retry, retry_timeouts=True)

    def post_json(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: bool = True,
        retry_timeouts: bool = True,
    ) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer (``timeout=None``: the client's)."""
        return self._send("POST", path, body, timeout, retry, retry_timeouts=retry_timeouts)

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None, timeout: float | None, retry: bool, *, retry_timeouts: bool) -> Any:
        def once() -> Any:
            return self._once(method, path, body, timeout)

        if not retry:
            return once()
        return retry_call(once, retries=self.retries, backoff=self.backoff, what=f"{method} {self.url(path)}", retry_timeouts=retry_timeouts)

    def _once(self, method: str, path: str, body: Mapping[str, Any] | None, timeout: float | None) -> Any:
        url = self.url(path)
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        started = time.perf_counter()
        try:
            response = self._client.request(
                method,
                path,
                json=dict(body) if body is not None else None,
                timeout=httpx.Timeout(limit, connect=min(limit, PROBE_TIMEOUT)),
            )
        except httpx.ConnectTimeout:
            raise BackendUnreachable(
                f"no connection to {self.server} at {url} within {min(limit, PROBE_TIMEOUT):g}s: is the host up and the port "
                "open? Start the server or fix the endpoint with `memgpt configure`.",
                endpoint=self.endpoint,
            ) from None
        except httpx.TimeoutException:
            raise BackendTimeout(
                f"{self.server} at {url} did not answer within {limit:g}s: the model may be too slow for this "
                "prompt or the server is stuck. Check the server's console, or raise the timeout "
                "(`timeout` under [model] in config.toml).",
                endpoint=self.endpoint,
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
        log.debug("%s %s -> HTTP %d in %.2fs", method, url, response.status_code, time.perf_counter() - started)
        if response.status_code >= 400:
            raise self._http_error(response, url)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BackendProtocolError(
                f"{self.server} at {url} answered HTTP {response.status_code} with a body that is not JSON "
                f"({len(response.content)} bytes: {self._snippet(response.text)!r}): is {self.endpoint} really a "
                f"{self.server} server, and nothing (a proxy) cut the answer short?",
                endpoint=self.endpoint,
            ) from None

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
        return BackendHTTPError(f"{self.server} at {url} answered HTTP {code}: {hint}{said}", status_code=code, endpoint=self.endpoint)

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
