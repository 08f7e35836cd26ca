"""The agent with a reasoning wrapper, on a scripted backend (no model): the thinking kept with the call in
recall and out of later prompts, and the two-request fallback on a backend that enforces only JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memgpt import catalog
from memgpt.agent.agent import Limits
from memgpt.contract.backend import Capabilities
from memgpt.errors import EmptyCompletion
from memgpt.memory.core import CoreMemory
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage
from memgpt.testing.scripted import ScriptedBackend, chat_agent

THOUGHT = "Ada said hello; greet her back by name"
CALL = json.dumps({"function": "send_message", "params": {"inner_thoughts": "", "message": "Hi Ada!"}})


class SchemaOnlyBackend(ScriptedBackend):
    """A server like LM Studio or Ollama: JSON schema, no grammar."""

    capabilities = Capabilities(constraints=("json_schema",))


def make_agent(tmp_path: Path, backend: ScriptedBackend, wrapper: str) -> Any:
    storage = SQLiteStorage(tmp_path / "memgpt.db")
    core = CoreMemory.from_dict({"persona": catalog.read("personas", "sam_pov"), "human": catalog.read("humans", "basic")})
    record = AgentRecord(name="thinker", settings={"preset": "memgpt_chat"}, core_memory=core.to_dict())
    storage.save_agent(record)
    limits = Limits(max_tokens=512, max_chain=1, reply_step=False)
    return chat_agent(record, storage, backend, wrapper=wrapper, limits=limits)


def stored_replies(agent: Any) -> list[Any]:
    return [m for m in agent.storage.recent_messages(agent.name, 100) if m.role == "assistant"]


def test_the_grammar_path_keeps_the_thinking_in_recall_and_out_of_later_prompts(tmp_path: Path) -> None:
    own = json.dumps({"function": "send_message", "params": {"inner_thoughts": "Answer.", "message": "Sure."}})
    backend = ScriptedBackend([f"{THOUGHT}\n</think>\n\n{CALL}", f"Secret plan\n</think>\n\n{own}", f"\n</think>\n\n{own}"])
    agent = make_agent(tmp_path, backend, "deepseek-r1-grammar")
    for text in ("Hello, I'm Ada", "Can you help me?", "Thanks"):
        agent.send(text)
    first, second, third = backend.requests
    assert first.constraint is not None and first.constraint.gbnf and first.constraint.gbnf.startswith("root ::= think ")
    assert first.prompt.endswith("<｜Assistant｜><think>\n")
    replies = stored_replies(agent)
    assert [m.content for m in replies] == [THOUGHT, "Secret plan", None]  # an empty block keeps nothing
    assert replies[0].function_call.inner_thoughts == THOUGHT  # the call had none: the thinking is its thought
    assert replies[1].function_call.inner_thoughts == "Answer."  # the call's own wins
    # Later prompts replay the calls (with their inner thoughts), never a think block.
    for later in (second, third):
        assert later.prompt.count("<think>") == 1 and later.prompt.endswith("<think>\n") and "</think>" not in later.prompt
    assert "Secret plan" not in third.prompt and "Sure." in third.prompt


def test_a_schema_only_backend_thinks_unconstrained_then_gets_the_schema(tmp_path: Path) -> None:
    backend = SchemaOnlyBackend([THOUGHT + "</think>", CALL])
    agent = make_agent(tmp_path, backend, "qwen3-grammar")
    result = agent.send("Hello, I'm Ada")
    assert [e.kind for e in result.events if e.kind == "error"] == []
    free, constrained = backend.requests
    shape = agent._shape()
    assert free.constraint is None and free.stop[-1] == "</think>" and free.max_tokens == shape.max_think_chars > 0
    assert free.prompt.endswith("<|im_start|>assistant\n<think>\n")
    assert constrained.prompt == free.prompt + THOUGHT + "\n</think>\n\n"
    assert constrained.constraint is not None and constrained.constraint.json_schema and constrained.constraint.gbnf is None
    assert constrained.max_tokens == 512 - backend.count_tokens(THOUGHT + "</think>")
    (reply,) = stored_replies(agent)
    assert reply.content == THOUGHT and reply.function_call.inner_thoughts == THOUGHT
    assert sum(u.completion_tokens for u in result.usage) == backend.count_tokens(THOUGHT + "</think>") + backend.count_tokens(
        CALL
    )


def test_a_thinking_longer_than_the_bound_is_cut_to_it(tmp_path: Path) -> None:
    backend = SchemaOnlyBackend(["x" * 5000, CALL])
    agent = make_agent(tmp_path, backend, "qwen3-grammar")
    agent.send("Hello")
    bound = agent._shape().max_think_chars
    assert backend.requests[1].prompt.endswith("<think>\n" + "x" * bound + "\n</think>\n\n")


def test_a_summary_comes_without_the_thinking_before_it(tmp_path: Path) -> None:
    calls = [f"\n</think>\n\n{CALL}"] * 3
    backend = ScriptedBackend([*calls, "They greet each other.\n</think>\n\nAda said hello three times."])
    agent = make_agent(tmp_path, backend, "deepseek-r1-grammar")
    for text in ("Hello", "Hello again", "Hello once more"):
        agent.send(text)
    result = agent.summarize()
    (alert,) = [e for e in result.events if e.kind == "alert"]
    assert alert.data["summary"] == "Ada said hello three times."
    assert backend.requests[-1].prompt.endswith("<｜Assistant｜><think>\n")


def test_a_thinking_request_that_comes_back_empty_still_gets_the_call(tmp_path: Path) -> None:
    # A backend raises EmptyCompletion when the model ends its turn at once (llama.cpp in process does).
    backend = SchemaOnlyBackend([EmptyCompletion("the model ended its turn at once"), CALL])
    agent = make_agent(tmp_path, backend, "qwen3-grammar")
    result = agent.send("Hello")
    assert [e for e in result.events if e.kind == "error"] == []
    assert backend.requests[1].prompt.endswith("<think>\n\n</think>\n\n")
    (reply,) = stored_replies(agent)
    assert reply.content is None and reply.function_call.arguments["message"] == "Hi Ada!"
