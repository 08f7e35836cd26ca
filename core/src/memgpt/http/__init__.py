"""The kit for server backends: one HTTP client with deadlines and bounded retries (``HTTPClient``), and
``HTTPBackend``, which does everything a server backend shares so that a plugin writes only its dialect.

Import from here (or from ``memgpt.plugin``); the modules inside are private.
"""

from memgpt.http._backend import DEFAULT_CHARS_PER_TOKEN, HTTPBackend, first_model, openai_completion, openai_request
from memgpt.http._client import CONNECT_TIMEOUT, Deadlines, HTTPClient, normalize_endpoint, retry_call, turn_deadline

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_CHARS_PER_TOKEN",
    "Deadlines",
    "HTTPBackend",
    "HTTPClient",
    "first_model",
    "normalize_endpoint",
    "openai_completion",
    "openai_request",
    "retry_call",
    "turn_deadline",
]
