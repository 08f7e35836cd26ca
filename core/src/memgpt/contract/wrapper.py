"""The Wrapper contract: a model family's prompt format and the way its output becomes a call."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from memgpt.contract.types import CallShape, FunctionCall, FunctionSchema, Message


class Prompt(BaseModel):
    """The text sent to the model.

    ``prefill`` is the part of ``text`` (its tail) that already belongs to the model's answer, e.g.
    ``{"function": "send_message"``; the parser reads ``prefill + completion``.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    stop: tuple[str, ...] = ()
    prefill: str = ""


class WrapperOptions(BaseModel):
    """What a wrapper factory may use to adapt itself (the ``auto`` wrapper reads the template)."""

    model_config = ConfigDict(frozen=True)

    model_name: str | None = None
    chat_template: str | None = None


class Wrapper(abc.ABC):
    """Formats messages + function docs into one prompt, and parses the model's text into one call."""

    name: str = ""
    #: The turn is generated under a grammar built from the functions (``-grammar`` wrappers).
    uses_grammar: bool = False
    call_shape: CallShape = CallShape()

    @abc.abstractmethod
    def format(
        self,
        system: str,
        messages: Sequence[Message],
        functions: Sequence[FunctionSchema],
        *,
        first_message: bool = False,
    ) -> Prompt:
        """Render the whole prompt: system text with function docs, then the messages, then the
        assistant's turn opening (and its prefill, for wrappers that use one)."""

    def parse(self, text: str, functions: Sequence[FunctionSchema], prompt: Prompt | None = None) -> FunctionCall:
        """Turn the model's output (after ``prompt.prefill``) into a validated call, or raise ``ParseError``.

        The default reads ``prompt.prefill + text`` with ``memgpt.parsing.parse_call`` in this wrapper's
        ``call_shape`` (repair, then validation against the function's schema); override it only for an
        output format of your own. Whatever a wrapper returns, the agent validates the call again before
        running it."""
        from memgpt.parsing import parse_call

        return parse_call((prompt.prefill if prompt is not None else "") + text, functions, self.call_shape).call

    @abc.abstractmethod
    def format_chat(self, system: str, turns: Sequence[tuple[str, str]]) -> Prompt:
        """Render a plain conversation of ``(role, text)`` turns, ending with the assistant's turn opening.

        Used for calls outside the function protocol (the summarizer), and by the template-fidelity
        tests, which compare it byte for byte with the model family's official template.
        """


@dataclass(frozen=True)
class WrapperSpec:
    """What ``register_wrappers`` registers."""

    name: str
    factory: Callable[[WrapperOptions], Wrapper]
    description: str = ""
    uses_grammar: bool = False
    plugin: str = ""


def wrapper_factory(cls: type[Wrapper]) -> Callable[[WrapperOptions], Wrapper]:
    """A factory for a wrapper class whose constructor takes no options."""

    def make(options: WrapperOptions) -> Wrapper:
        return cls()

    return make
