"""The contracts between core and plugins: backends, wrappers and the data they exchange."""

from memgpt.contract.backend import Backend, BackendSettings, BackendSpec, Capabilities
from memgpt.contract.types import (
    BackendStatus,
    CallShape,
    Completion,
    CompletionRequest,
    Constraint,
    FunctionCall,
    FunctionSchema,
    Message,
    SamplingParams,
    Usage,
)
from memgpt.contract.wrapper import Prompt, Wrapper, WrapperOptions, WrapperSpec

__all__ = [
    "Backend",
    "BackendSettings",
    "BackendSpec",
    "BackendStatus",
    "CallShape",
    "Capabilities",
    "Completion",
    "CompletionRequest",
    "Constraint",
    "FunctionCall",
    "FunctionSchema",
    "Message",
    "Prompt",
    "SamplingParams",
    "Usage",
    "Wrapper",
    "WrapperOptions",
    "WrapperSpec",
]
