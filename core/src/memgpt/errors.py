"""Every error a user of memgpt can hit, as one tree.

    MemGPTError
    ├── ConfigError                 a config file is malformed, outdated or names something unknown
    ├── UnknownNameError            a backend / wrapper / grammar / storage name nobody registered
    ├── PluginError                 a plugin failed to import, to register, or inside a hook
    ├── BackendError                anything between us and the model
    │   ├── BackendUnreachable      connection refused, DNS, server not running
    │   ├── BackendTimeout          no answer in time
    │   ├── BackendHTTPError        4xx / 5xx from the server
    │   ├── BackendProtocolError    a body that is not what the server's dialect promises
    │   ├── EmptyCompletion         the model produced no text at all
    │   └── ModelLoadError          an in-process model could not be loaded (missing / corrupt file)
    ├── GrammarError                a grammar that llama.cpp would reject (never handed to a sampler)
    ├── ContextOverflowError        the prompt cannot fit the context window, even after summarizing
    ├── ParseError                  model output that is not one valid function call
    │   ├── UnknownFunctionError    the call names a function the agent does not have
    │   └── ArgumentError           missing / extra / wrongly typed parameters
    ├── StorageError                the database could not be read or written
    │   └── AgentBusyError          the agent is open in another memgpt session
    ├── EmbeddingError              the embedding model is missing, cannot load, or cannot embed
    ├── LoadError                   a path given to `memgpt load` is missing or cannot be read
    └── FunctionError               a function the model called failed; the message is shown to the model
        └── MemoryEditError         a core-memory edit that cannot be applied (memgpt.memory.core)

Every message says what happened and what to do about it. ``retryable`` marks errors for which an
identical second attempt may succeed (timeouts, 5xx, refused while a server starts).
"""

from __future__ import annotations


class MemGPTError(Exception):
    """Root of every error memgpt raises on purpose."""

    retryable: bool = False


class ConfigError(MemGPTError):
    """The config file (or a setting given on the command line) is not usable."""


class UnknownNameError(MemGPTError, KeyError):
    """A name was asked for that no plugin registered; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        listed = ", ".join(self.choices) or "(none installed)"
        super().__init__(f"unknown {kind} {name!r}; choose one of: {listed}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginError(MemGPTError):
    """A plugin could not be loaded or one of its hooks failed."""


class BackendError(MemGPTError):
    """The model backend failed; ``endpoint`` names where we were talking to."""

    def __init__(self, message: str, *, endpoint: str | None = None):
        self.endpoint = endpoint
        super().__init__(message)


class BackendUnreachable(BackendError):
    retryable = True


class BackendTimeout(BackendError):
    retryable = True


class BackendHTTPError(BackendError):
    def __init__(self, message: str, *, status_code: int, endpoint: str | None = None):
        self.status_code = status_code
        super().__init__(message, endpoint=endpoint)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status_code >= 500 or self.status_code == 429


class BackendProtocolError(BackendError):
    """The server answered, but not in the shape its dialect documents."""


class EmptyCompletion(BackendError):
    retryable = True


class ModelLoadError(BackendError):
    """A local model file is missing, unreadable or not a valid GGUF."""


class GrammarError(MemGPTError):
    """A GBNF grammar that llama.cpp's parser rejects."""


class ContextOverflowError(MemGPTError):
    """The fixed part of the prompt (system, functions, core memory, newest messages) exceeds the window."""


class ParseError(MemGPTError):
    """Model output could not be turned into one valid function call.

    ``raw`` keeps the output as received so nothing the model said is lost.
    """

    def __init__(self, message: str, *, raw: str = ""):
        self.raw = raw
        super().__init__(message)


class UnknownFunctionError(ParseError):
    """The call names a function the agent does not have."""


class ArgumentError(ParseError):
    """The call's parameters do not match the function's schema."""


class StorageError(MemGPTError):
    """The agent database could not be read or written."""


class AgentBusyError(StorageError):
    """Another process has the agent open: one session per agent, so no turn overwrites another's."""


class EmbeddingError(MemGPTError):
    """The embedding model is not installed, cannot be loaded offline, or failed to embed."""


class LoadError(MemGPTError):
    """A file or directory named for loading into archival memory is missing or unreadable."""


class FunctionError(MemGPTError):
    """A function the model called failed in a way the model should be told about: a function handler
    raises it with a message the model reads as the call's ``Failed`` result, and can act on (a bad
    argument, nothing found, a store that is unavailable). Any other exception a handler raises is a bug:
    the agent logs it with its traceback and the model reads only that the function failed."""
