"""A user message gets an answer: a chain that ends with nothing said gets one more step that can only reply;
where even that fails (or it is off), the turn says so. What the user got is counted per turn."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from memgpt.agent import agent as agent_module
from memgpt.agent import events
from memgpt.agent.agent import Agent, Limits
from memgpt.testing.scripted import ScriptedBackend, call

MakeAgent = Callable[..., Agent]


def alerts(result: Any) -> list[str]:
    return [e.text for e in result.events if e.kind == "alert"]


def test_a_repeated_search_with_nothing_said_ends_with_one_no_reply_alert(
    make_agent: MakeAgent, backend: ScriptedBackend
) -> None:
    agent = make_agent()
    search = call("conversation_search", "look it up", query="Lisbon", request_heartbeat=True)
    backend.add(search, search)
    result = agent.send("Where do I live?")
    assert not result.answered and result.stopped_by == "repeat"
    assert alerts(result) == ["the agent did not reply (it repeated its last call); /retry, or rephrase"]
    assert result.events[-1].data == {"reason": "no_reply"}
    assert result.outcome() == {
        "answered": False,
        "stopped_by": "repeat",
        "reply_step": False,
        "calls": 2,
        "thoughts": 2,
        "memory_edits": 0,
        "searches": 2,
    }


def test_a_chain_the_model_ends_without_send_message_says_so(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(call("core_memory_append", "note it", name="human", content="Lives in Porto", request_heartbeat=False))
    result = agent.send("I live in Porto")
    assert result.stopped_by is None and not result.answered
    assert alerts(result) == ["the agent did not reply (it ended its turn without send_message); /retry, or rephrase"]
    assert result.outcome()["memory_edits"] == 1


def test_the_chain_limit_without_a_reply_is_one_alert(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent(limits=Limits(max_chain=2, reply_step=False))
    backend.add(*[call("archival_memory_insert", "store", content=f"fact {i}", request_heartbeat=True) for i in range(2)])
    result = agent.send("remember two things")
    assert result.stopped_by == "chain_limit"
    assert alerts(result) == ["the agent did not reply (stopped after 2 chained steps (the limit)); /retry, or rephrase"]
    # an event's chain has no one waiting for a reply: the guard's own alert
    backend.add(*[call("archival_memory_insert", "file", content=f"note {i}", request_heartbeat=True) for i in range(2)])
    woken = agent.send_event(events.heartbeat(events.HEARTBEAT_TIMED))
    assert alerts(woken) == ["stopped after 2 chained steps (the limit); waiting for you"]


def test_retry_after_no_reply_resends_the_same_message(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    search = call("conversation_search", "look", query="x", request_heartbeat=True)
    backend.add(search, search)
    agent.send("What is my dog's name?")
    backend.add(call("send_message", "answer", message="Miso."))
    retried = agent.retry()
    assert retried is not None and retried.replies == ["Miso."]
    assert (
        json.loads(backend.requests[-1].prompt.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0])["message"]
        == "What is my dog's name?"
    )
    # the unanswered exchange left the context window: the message is in it once
    assert backend.requests[-1].prompt.count("What is my dog's name?") == 1


def test_a_heartbeat_turn_without_a_reply_is_not_an_alert(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(call("core_memory_append", "reflect", name="persona", content="I like tea", request_heartbeat=False))
    result = agent.send_event(events.heartbeat(events.HEARTBEAT_TIMED))
    assert alerts(result) == [] and not result.answered


def test_an_unanswered_chain_gets_one_step_that_can_only_reply(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent(limits=Limits())  # the reply step is on by default
    search = call("conversation_search", "look it up", query="Lisbon", request_heartbeat=True)
    backend.add(search, search, call("send_message", "answer now", message="You live in Lisbon."))
    result = agent.send("Where do I live?")
    assert result.replies == ["You live in Lisbon."] and alerts(result) == []
    assert result.outcome()["answered"] and result.reply_step and result.stopped_by == "repeat" and result.steps == 3
    reply_request = backend.requests[-1]
    # that step is constrained to send_message alone (the other functions stay documented in the prompt)
    assert reply_request.constraint is not None and reply_request.constraint.gbnf is not None
    assert "send_message" in reply_request.constraint.gbnf and "conversation_search" not in reply_request.constraint.gbnf
    assert "conversation_search" in reply_request.prompt
    assert (
        events.read(reply_request.prompt.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0])["reason"]
        == agent_module.REPLY_NOW
    )


def test_the_reply_step_refuses_any_other_function_even_unconstrained(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent(limits=Limits(parse_retries=1))
    # The model ends its turn with a memory edit, then (on a backend that ignored the grammar) tries another
    # edit in the reply step: refused and re-asked, never run.
    edit = call("core_memory_append", "note", name="human", content="Lives in Porto", request_heartbeat=False)
    other = call("core_memory_append", "again", name="human", content="Likes tea", request_heartbeat=False)
    backend.add(edit, other, call("send_message", "reply", message="Noted: Porto."))
    result = agent.send("I live in Porto")
    assert result.replies == ["Noted: Porto."] and result.reply_step
    assert agent.core_memory.blocks["human"].count("Likes tea") == 0


def test_a_reply_the_model_gave_itself_is_not_a_reply_step(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent(limits=Limits())
    backend.add(call("send_message", "greet", message="Hi!"))
    result = agent.send("hello")
    assert result.answered and not result.reply_step and result.steps == 1 and len(backend.requests) == 1


def test_a_message_typed_after_an_interrupted_one_does_not_replace_it(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent()
    backend.add(KeyboardInterrupt())  # Ctrl-C while the model works on the first message
    try:
        agent.send("My dog is called Miso.")
    except KeyboardInterrupt:
        pass
    assert agent.pending_messages == ["My dog is called Miso."]
    backend.add(call("send_message", "both", message="Miso is a lovely name. Hello!"))
    result = agent.send("Hello?")
    assert result.replies == ["Miso is a lovely name. Hello!"]
    prompt = backend.requests[-1].prompt
    assert prompt.index("My dog is called Miso.") < prompt.index("Hello?")  # the model read both, in order
    stored = [events.read(m.content) for m in storage.recent_messages("sam", 100) if m.role == "user"]
    assert [e["message"] for e in stored if e and e.get("type") == "user_message"] == ["My dog is called Miso.", "Hello?"]
    assert agent.pending_messages == [] and make_agent().pending_messages == []


def test_retry_after_an_interrupt_sends_the_message_once(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(KeyboardInterrupt())
    try:
        agent.send("What is my name?")
    except KeyboardInterrupt:
        pass
    backend.add(call("send_message", "answer", message="I don't know yet."))
    assert agent.retry() is not None
    assert backend.requests[-1].prompt.count("What is my name?") == 1
