"""The agent's own checks on a model turn, whatever the wrapper: every call is validated against its
function's schema before it runs (a wrapper that only does ``json.loads`` cannot hand a function wrong
arguments), and output the model was cut off in is re-asked, never delivered as if complete."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from memgpt.agent.agent import Agent, Limits
from memgpt.contract.types import Completion, CompletionRequest, FunctionCall, FunctionSchema
from memgpt.contract.wrapper import Prompt
from memgpt.errors import ParseError
from memgpt.testing.scripted import ScriptedBackend, call


class LengthBackend(ScriptedBackend):
    """A scripted backend whose entries may be ``(text, finish_reason)``."""

    def complete(self, request: CompletionRequest) -> Completion:
        entry = self.script[0] if self.script else None
        if isinstance(entry, tuple):
            self.script[0] = entry[0]
            return super().complete(request).model_copy(update={"finish_reason": entry[1]})
        return super().complete(request)


def loose(agent: Agent) -> None:
    """Make ``agent``'s wrapper parse with a bare ``json.loads`` (as a third-party wrapper may)."""

    def parse(text: str, functions: Sequence[FunctionSchema], prompt: Prompt | None = None) -> FunctionCall:
        try:
            data = json.loads((prompt.prefill if prompt else "") + text)
            return FunctionCall(name=data["function"], arguments=data.get("params", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ParseError(f"not a call: {exc}", raw=text) from None

    agent.wrapper.parse = parse  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "bad",
    [
        call("send_message", message=["not", "text"]),
        call("send_message", message="hi", sudo=True),
        call("core_memory_append", name="nonexistent", content="x"),
        call("core_memory_replace", name="human", old_content="tea", new_content=7),
        call("rm_rf"),
        json.dumps({"function": "send_message", "params": {"inner_thoughts": "x", "message": "bad \ud800"}}),
    ],
)
def test_a_call_that_breaks_its_schema_never_runs_whatever_the_wrapper(
    make_agent: Callable[..., Agent], backend: ScriptedBackend, bad: str
) -> None:
    agent = make_agent()
    loose(agent)
    backend.add(bad, bad, bad)
    result = agent.send("hello")
    assert [e for e in result.events if e.kind in ("result", "assistant", "call")] == []
    assert any(e.kind == "error" for e in result.events)
    assert agent.core_memory.blocks["human"] == "Name: unknown\nLikes: tea"


def test_a_validated_call_from_a_loose_wrapper_runs_with_the_parser_leniency(
    make_agent: Callable[..., Agent], backend: ScriptedBackend
) -> None:
    agent = make_agent()
    loose(agent)
    backend.add(call("send_message", message="Hi!"))
    result = agent.send("hello")
    assert result.replies == ["Hi!"]


def test_the_retry_after_a_refused_call_says_what_was_wrong(make_agent: Callable[..., Agent], backend: ScriptedBackend) -> None:
    agent = make_agent()
    loose(agent)
    backend.add(call("send_message", message="hi", sudo=True), call("send_message", message="Hi!"))
    assert agent.send("hello").replies == ["Hi!"]
    assert "sudo" in backend.requests[1].prompt


@pytest.fixture
def length_backend() -> LengthBackend:
    return LengthBackend()


@pytest.fixture
def make_length_agent(storage: Any, length_backend: LengthBackend) -> Callable[..., Agent]:
    from memgpt.functions.memory import FUNCTIONS
    from memgpt.memory.core import CoreMemory
    from memgpt.storage.base import AgentRecord
    from memgpt.testing.scripted import chat_agent

    def make(wrapper: str = "chatml-grammar") -> Agent:
        core = CoreMemory.from_dict({"persona": "I am Sam.", "human": "Name: unknown"})
        record = AgentRecord(name="sam", settings={"preset": "memgpt_chat"}, core_memory=core.to_dict())
        storage.save_agent(record)
        return chat_agent(record, storage, length_backend, wrapper=wrapper, functions=FUNCTIONS, limits=Limits(reply_step=False))

    return make


CUT = '{"function": "send_message", "params": {"inner_thoughts": "Greet them.", "message": "Hello, how are yo'


#: The model's text for each wrapper: chatml prefills the first turn's opening up to the inner thoughts.
CONTINUATIONS = {
    "chatml-grammar": (CUT, call("send_message", "Greet them.", message="Hello, how are you?")),
    "chatml": (CUT.split('"inner_thoughts": "', 1)[1], 'Greet them.", "message": "Hello, how are you?"}}'),
}


@pytest.mark.parametrize("wrapper", sorted(CONTINUATIONS))
def test_output_cut_off_at_the_token_limit_is_re_asked_not_delivered(
    make_length_agent: Callable[..., Agent], length_backend: LengthBackend, wrapper: str
) -> None:
    agent = make_length_agent(wrapper)
    cut, complete = CONTINUATIONS[wrapper]
    length_backend.add((cut, "length"), complete)
    result = agent.send("hi")
    assert result.replies == ["Hello, how are you?"]
    assert "cut off" in length_backend.requests[1].prompt


def test_output_cut_off_every_time_ends_with_an_error_and_no_reply(
    make_length_agent: Callable[..., Agent], length_backend: LengthBackend
) -> None:
    agent = make_length_agent()
    length_backend.add(*[(CUT, "length")] * 3)
    result = agent.send("hi")
    assert result.replies == []
    assert any(e.kind == "error" for e in result.events)


def test_a_complete_call_that_ends_exactly_at_the_limit_is_delivered(
    make_length_agent: Callable[..., Agent], length_backend: LengthBackend
) -> None:
    agent = make_length_agent()
    length_backend.add((call("send_message", message="Hello!"), "length"))
    assert agent.send("hi").replies == ["Hello!"]


def test_a_lone_surrogate_never_reaches_storage(make_agent: Callable[..., Agent], backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    half = '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "bad \\ud800 half"}}'
    backend.add(half, half, half)
    result = agent.send("hi")
    assert result.replies == []
    stored = storage.recent_messages("sam", 1000)
    assert any(m.role == "assistant" for m in stored)  # the raw output is kept in recall, as text
    for message in stored:
        message.model_dump_json().encode("utf-8")
        if message.function_call is not None:
            json.dumps(message.function_call.arguments, ensure_ascii=False).encode("utf-8")
