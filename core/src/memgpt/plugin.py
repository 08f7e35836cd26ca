"""The SDK for plugin authors: everything a backend, wrapper, function, storage or embedder plugin needs.

A third-party plugin imports from this module only; every other module of the ``memgpt`` package is the
implementation and may move between releases. ``__all__`` is the public surface, pinned by a test.

```python
from memgpt.plugin import Backend, BackendSpec, hookimpl

@hookimpl
def register_backends(register):
    register(BackendSpec(name="mine", factory=MyBackend, default_endpoint="http://localhost:9000"))
```

The contract test bases (``BackendContract``, ``HTTPFaultContract``, ``WrapperContract``) import pytest, so
they live in ``memgpt.testing``; import them from there in a plugin's tests.
"""

from memgpt import hookimpl
from memgpt.cli.spec import CommandSpec
from memgpt.embeddings.spec import EmbedderSpec
from memgpt.errors import (
    ArgumentError,
    BackendError,
    BackendHTTPError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnreachable,
    ConfigError,
    ContextOverflowError,
    EmbeddingError,
    EmptyCompletion,
    GrammarError,
    MemGPTError,
    ModelLoadError,
    ParseError,
    PluginError,
    StorageError,
    UnknownFunctionError,
    UnknownNameError,
)
from memgpt.functions.docs import describe_type, function_docs, system_text
from memgpt.functions.spec import FunctionContext, FunctionSpec
from memgpt.grammar import GrammarSpec
from memgpt.llm.backend import Backend, BackendSettings, BackendSpec, Capabilities
from memgpt.llm.http import HTTPClient, normalize_endpoint
from memgpt.llm.http_backend import HTTPBackend, first_model, openai_completion, openai_request
from memgpt.llm.parsing import ParsedCall, parse_call, validate_call
from memgpt.llm.types import (
    BackendStatus,
    CallShape,
    Completion,
    CompletionRequest,
    Constraint,
    ConstraintKind,
    FinishReason,
    FunctionCall,
    FunctionSchema,
    Message,
    SamplingParams,
    Usage,
)
from memgpt.llm.wrapper import Prompt, Wrapper, WrapperOptions, WrapperSpec, wrapper_factory
from memgpt.storage.base import AgentRecord, Passage, Storage
from memgpt.storage.spec import StorageSpec

__all__ = [
    "AgentRecord",
    "ArgumentError",
    "Backend",
    "BackendError",
    "BackendHTTPError",
    "BackendProtocolError",
    "BackendSettings",
    "BackendSpec",
    "BackendStatus",
    "BackendTimeout",
    "BackendUnreachable",
    "CallShape",
    "Capabilities",
    "CommandSpec",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "Constraint",
    "ConstraintKind",
    "ContextOverflowError",
    "EmbedderSpec",
    "EmbeddingError",
    "EmptyCompletion",
    "FinishReason",
    "FunctionCall",
    "FunctionContext",
    "FunctionSchema",
    "FunctionSpec",
    "GrammarError",
    "GrammarSpec",
    "HTTPBackend",
    "HTTPClient",
    "MemGPTError",
    "Message",
    "ModelLoadError",
    "ParseError",
    "ParsedCall",
    "Passage",
    "PluginError",
    "Prompt",
    "SamplingParams",
    "Storage",
    "StorageError",
    "StorageSpec",
    "UnknownFunctionError",
    "UnknownNameError",
    "Usage",
    "Wrapper",
    "WrapperOptions",
    "WrapperSpec",
    "describe_type",
    "first_model",
    "function_docs",
    "hookimpl",
    "normalize_endpoint",
    "openai_completion",
    "openai_request",
    "parse_call",
    "system_text",
    "validate_call",
    "wrapper_factory",
]
