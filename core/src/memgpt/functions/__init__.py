"""The functions the agent calls to manage its memory and talk to the user."""

from memgpt.functions.spec import FunctionSpec

__all__ = ["FunctionSpec"]
