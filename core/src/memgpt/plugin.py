"""The SDK for plugin authors: everything a backend, wrapper, function, storage or embedder plugin needs.

A third-party plugin imports from this module only; every other module of the ``memgpt`` package is the
implementation and may move between releases. ``__all__`` is the public surface, pinned by a test.

```python
# my_plugin/__init__.py, imported at every start: it declares the backend and imports nothing heavy
from memgpt.plugin import BackendSpec, Capabilities, hookimpl

def _open(settings):
    from my_plugin.backend import MyBackend  # loaded when the backend is opened

    return MyBackend(settings)

MINE = BackendSpec(
    name="mine", factory=_open, default_endpoint="http://localhost:9000",
    capabilities=Capabilities(constraints=("gbnf",), tokenizer=True),
)

@hookimpl
def register_backends(register):
    register(MINE)

# my_plugin/backend.py
from memgpt.plugin import HTTPBackend
from my_plugin import MINE

class MyBackend(HTTPBackend):
    spec = MINE  # its name, default endpoint and capabilities are the spec's
    ...
```

The contract test bases (``BackendContract``, ``HTTPFaultContract``, ``WrapperContract``) import pytest, so
they live in ``memgpt.testing``; import them from there in a plugin's tests.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use (below)
    from memgpt import hookimpl
    from memgpt.cli.spec import CommandSpec
    from memgpt.contract.backend import Backend, BackendSettings, BackendSpec, Capabilities
    from memgpt.contract.types import (
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
    from memgpt.contract.wrapper import Prompt, Wrapper, WrapperOptions, WrapperSpec, wrapper_factory
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
        FunctionError,
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
    from memgpt.http import HTTPBackend, HTTPClient, first_model, normalize_endpoint, openai_completion, openai_request
    from memgpt.parsing import ParsedCall, parse_call, validate_call
    from memgpt.storage.base import AgentRecord, Passage, Storage
    from memgpt.storage.spec import StorageOptions, StorageSpec

_WHERE = {
    "AgentRecord": "memgpt.storage.base",
    "ArgumentError": "memgpt.errors",
    "Backend": "memgpt.contract.backend",
    "BackendError": "memgpt.errors",
    "BackendHTTPError": "memgpt.errors",
    "BackendProtocolError": "memgpt.errors",
    "BackendSettings": "memgpt.contract.backend",
    "BackendSpec": "memgpt.contract.backend",
    "BackendStatus": "memgpt.contract.types",
    "BackendTimeout": "memgpt.errors",
    "BackendUnreachable": "memgpt.errors",
    "CallShape": "memgpt.contract.types",
    "Capabilities": "memgpt.contract.backend",
    "CommandSpec": "memgpt.cli.spec",
    "Completion": "memgpt.contract.types",
    "CompletionRequest": "memgpt.contract.types",
    "ConfigError": "memgpt.errors",
    "Constraint": "memgpt.contract.types",
    "ConstraintKind": "memgpt.contract.types",
    "ContextOverflowError": "memgpt.errors",
    "EmbedderSpec": "memgpt.embeddings.spec",
    "EmbeddingError": "memgpt.errors",
    "EmptyCompletion": "memgpt.errors",
    "FinishReason": "memgpt.contract.types",
    "FunctionCall": "memgpt.contract.types",
    "FunctionContext": "memgpt.functions.spec",
    "FunctionError": "memgpt.errors",
    "FunctionSchema": "memgpt.contract.types",
    "FunctionSpec": "memgpt.functions.spec",
    "GrammarError": "memgpt.errors",
    "GrammarSpec": "memgpt.grammar",
    "HTTPBackend": "memgpt.http",
    "HTTPClient": "memgpt.http",
    "MemGPTError": "memgpt.errors",
    "Message": "memgpt.contract.types",
    "ModelLoadError": "memgpt.errors",
    "ParseError": "memgpt.errors",
    "ParsedCall": "memgpt.parsing",
    "Passage": "memgpt.storage.base",
    "PluginError": "memgpt.errors",
    "Prompt": "memgpt.contract.wrapper",
    "SamplingParams": "memgpt.contract.types",
    "Storage": "memgpt.storage.base",
    "StorageError": "memgpt.errors",
    "StorageOptions": "memgpt.storage.spec",
    "StorageSpec": "memgpt.storage.spec",
    "UnknownFunctionError": "memgpt.errors",
    "UnknownNameError": "memgpt.errors",
    "Usage": "memgpt.contract.types",
    "Wrapper": "memgpt.contract.wrapper",
    "WrapperOptions": "memgpt.contract.wrapper",
    "WrapperSpec": "memgpt.contract.wrapper",
    "describe_type": "memgpt.functions.docs",
    "first_model": "memgpt.http",
    "function_docs": "memgpt.functions.docs",
    "hookimpl": "memgpt",
    "normalize_endpoint": "memgpt.http",
    "openai_completion": "memgpt.http",
    "openai_request": "memgpt.http",
    "parse_call": "memgpt.parsing",
    "system_text": "memgpt.functions.docs",
    "validate_call": "memgpt.parsing",
    "wrapper_factory": "memgpt.contract.wrapper",
}

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
    "FunctionError",
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
    "StorageOptions",
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


def __getattr__(name: str) -> Any:
    """Import a name's module on first use: a plugin's registration module imports only what it names, so
    ``memgpt --help`` does not pay for the HTTP kit or the parser when a plugin registers a spec."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'memgpt.plugin' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
