"""The step loop driven through chosen model outputs; each test asserts the exact state of memory and
storage afterwards (real SQLite file, real chatml-grammar wrapper and call grammar)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from memgpt.agent import events
from memgpt.agent.agent import Agent, Limits
from memgpt.contract.types import Completion, CompletionRequest, Usage
from memgpt.errors import BackendTimeout, BackendUnreachable, ContextOverflowError
from memgpt.testing.scripted import LetterEmbedder, ScriptedBackend, call

MakeAgent = Callable[..., Agent]


def stored(storage: Any, name: str = "sam") -> list[Any]:
    return storage.recent_messages(name, 1000)


def test_a_reply_is_stored_as_one_step(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(call("send_message", "greet them", message="Hi there!"))
    result = agent.send("hello")
    assert result.replies == ["Hi there!"] and result.steps == 1
    roles = [m.role for m in stored(storage)]
    assert roles == ["user", "assistant", "function"]
    record = storage.get_agent("sam")
    assert record.in_context == [m.id for m in stored(storage)]
    assert "pending_message" not in record.settings
    assert json.loads(stored(storage)[0].content)["message"] == "hello"
    # the request went out under the grammar, with the wrapper's stop strings
    request = backend.requests[0]
    assert request.constraint is not None and (request.constraint.gbnf or request.constraint.json_schema)
    assert "hello" in request.prompt


def test_memory_edit_with_heartbeat_chains_to_a_reply(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_append", "remember the name", name="human", content="Name: Ada", request_heartbeat=True),
        call("send_message", message="Nice to meet you, Ada."),
    )
    result = agent.send("I'm Ada")
    assert result.steps == 2 and result.replies == ["Nice to meet you, Ada."]
    assert storage.get_agent("sam").core_memory["human"].endswith("\nName: Ada")
    heartbeat = events.read(stored(storage)[3].content)
    assert heartbeat["type"] == "heartbeat" and heartbeat["reason"] == events.HEARTBEAT_REQUESTED
    # the second prompt shows the edited memory
    assert "Name: Ada" in backend.requests[1].prompt


def core_section(prompt: str) -> str:
    start = prompt.index("### Core memory")
    return prompt[start : prompt.index("</human>", start)]


def test_an_edit_keeps_the_prompt_append_only_until_the_context_is_rewritten(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    """The layout that lets a backend reuse its KV cache across an edit: each prompt extends the last one;
    the edit's result carries the block's new text, and the core memory section at the top catches up
    only when the context is rewritten anyway (here: /pop)."""
    agent = make_agent()
    backend.add(
        call("core_memory_append", "remember the name", name="human", content="Name: Ada", request_heartbeat=True),
        call("send_message", message="Nice to meet you, Ada."),
        call("send_message", message="Tea, then."),
    )
    agent.send("I'm Ada")
    agent.send("I like tea")
    first, second, third = (r.prompt for r in backend.requests)
    assert second.startswith(first) and third.startswith(second)
    assert all("Name: Ada" not in core_section(p) for p in (first, second, third))
    result = events.read(stored(storage)[2].content)
    assert (
        result["message"]
        == "Appended to human (34/2000 characters).\nThe human block now reads:\nName: unknown\nLikes: tea\nName: Ada"
    )
    assert "Name: Ada" in agent.core_memory.blocks["human"]

    # a resumed agent renders the very same prompt (a KV cache saved on disk stays valid)
    resumed = make_agent()
    assert resumed._prompt([]).text == agent._prompt([]).text

    agent.pop(1)
    backend.add(call("send_message", message="Hi Ada."))
    agent.send("hello again")
    assert "Name: Ada" in core_section(backend.requests[-1].prompt)
    assert storage.get_agent("sam").settings["core_memory_shown"]["human"].endswith("Name: Ada")


def test_replace_with_inexact_text_fails_with_the_closest_line(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_replace", name="human", old_content="likes tea", new_content="Likes: coffee", request_heartbeat=False),
        call("send_message", message="ok"),
    )
    result = agent.send("I switched to coffee")
    failed = [e for e in result.events if e.kind == "result" and e.data["status"] == "Failed"]
    assert len(failed) == 1 and "'Likes: tea'" in failed[0].text
    assert storage.get_agent("sam").core_memory["human"] == "Name: unknown\nLikes: tea"
    # a failed call hands control back to the model (heartbeat), which then replies
    assert result.steps == 2 and result.replies == ["ok"]


def test_an_edit_over_the_block_limit_is_refused(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_append", name="persona", content="x" * 1199, request_heartbeat=False),
        call("send_message", message="done"),
    )
    agent.core_memory.blocks["persona"] = "y" * 1000
    result = agent.send("grow")
    assert any("over its limit of 2000" in e.text for e in result.events if e.kind == "result")
    assert storage.get_agent("sam").core_memory["persona"] == "y" * 1000  # the refused edit changed nothing


def test_bad_output_is_re_asked_and_never_reaches_the_context(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent()
    backend.add("this is not json at all", call("send_message", message="sorry, here I am"))
    result = agent.send("hi")
    assert result.replies == ["sorry, here I am"]
    assert len(backend.requests) == 2
    assert "not a valid function call" in backend.requests[1].prompt
    assert all("not json at all" not in (m.content or "") for m in stored(storage))


def test_output_that_never_parses_is_kept_in_recall_but_out_of_context(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent(limits=Limits(parse_retries=1, reply_step=False))
    backend.add("garbage one", "garbage two")
    result = agent.send("hi")
    assert [e.kind for e in result.events] == ["error"]
    messages = stored(storage)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].content == "garbage two"
    record = storage.get_agent("sam")
    assert record.in_context == [messages[0].id]
    assert "pending_message" not in record.settings


def test_an_unknown_function_is_never_executed(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent(limits=Limits(parse_retries=0, reply_step=False))
    backend.add(call("delete_everything", path="/"))
    result = agent.send("hi")
    assert result.events[-1].kind == "error"
    assert not any(m.function_call for m in stored(storage))


def test_heartbeat_chains_are_capped(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent(limits=Limits(max_chain=3, reply_step=False))
    backend.add(*[call("archival_memory_search", query=f"thing {i}", page=0, request_heartbeat=True) for i in range(5)])
    result = agent.send("loop forever")
    assert result.steps == 3 and result.events[-1].kind == "alert"
    assert len(backend.script) == 2


def test_backend_failure_keeps_the_message_and_the_state(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(call("send_message", message="first"))
    agent.send("one")
    before = [m.id for m in stored(storage)]
    backend.add(BackendUnreachable("cannot reach http://127.0.0.1:9: start the server", endpoint="http://127.0.0.1:9"))
    with pytest.raises(BackendUnreachable):
        agent.send("two")
    assert [m.id for m in stored(storage)] == before
    assert storage.get_agent("sam").settings["pending_message"] == "two"
    # a fresh agent object (a restarted process) sees the pending message and can retry it
    again = make_agent()
    assert again.pending_message == "two"
    backend.add(call("send_message", message="second"))
    assert again.retry().replies == ["second"]
    assert again.pending_message is None
    texts = [events.read(m.content).get("message") for m in stored(storage) if m.role == "user"]
    assert texts == ["one", "two"]


def test_failure_mid_chain_keeps_the_committed_steps(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_append", name="human", content="Pet: cat", request_heartbeat=True), BackendTimeout("slow", endpoint="x")
    )
    with pytest.raises(BackendTimeout):
        agent.send("I have a cat")
    assert "Pet: cat" in storage.get_agent("sam").core_memory["human"]
    assert len(stored(storage)) == 3


def test_an_interrupt_inside_a_function_rolls_everything_back(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent()
    original = agent.core_memory.append

    def append_then_interrupt(name: str, content: str) -> str:
        original(name, content)
        raise KeyboardInterrupt

    monkeypatch.setattr(agent.core_memory, "append", append_then_interrupt)
    backend.add(call("core_memory_append", name="human", content="Pet: dog", request_heartbeat=False))
    with pytest.raises(KeyboardInterrupt):
        agent.send("I have a dog")
    assert "Pet: dog" not in agent.core_memory.blocks["human"]
    assert "Pet: dog" not in storage.get_agent("sam").core_memory["human"]
    assert stored(storage) == [] and agent.context_messages() == []
    assert storage.get_agent("sam").settings["pending_message"] == "I have a dog"


def test_recall_search_finds_what_both_sides_said(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(call("send_message", message="Pizza with basil is my favourite too"))
    agent.send("I love pizza")
    backend.add(call("conversation_search", query="pizza", page=0, request_heartbeat=False))
    result = agent.send("what did we say about food?")
    text = next(e.text for e in result.events if e.kind == "result")
    assert "I love pizza" in text and "Pizza with basil" in text


def test_archival_insert_then_search(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(
        call("archival_memory_insert", content="The user's birthday is on March 3", request_heartbeat=True),
        call("archival_memory_search", query="birthday", page=0, request_heartbeat=False),
    )
    result = agent.send("remember my birthday")
    found = [e.text for e in result.events if e.kind == "result"][-1]
    assert "March 3" in found
    assert storage.count_passages("sam") == 1


def test_the_embedder_loads_before_the_steps_write_transaction(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    """A first load of the embedder's model takes seconds: done inside the step's transaction it would hold the
    database's write lock that long for every other session on it. The agent loads it first."""
    loads: list[bool] = []

    class Recording(LetterEmbedder):
        def __init__(self) -> None:
            loads.append(storage.conn.in_transaction)

        def embed(self, texts: list[str]) -> Any:
            loads.append(storage.conn.in_transaction)
            return super().embed(texts)

    agent = make_agent(embedder=Recording)
    backend.add(call("archival_memory_insert", content="The user's birthday is on March 3", request_heartbeat=False))
    agent.send("remember my birthday")
    assert storage.count_passages("sam") == 1
    assert loads[:2] == [False, False]  # built, and its model run once, before the transaction began
    assert loads[2:] == [True]  # the insert's own embedding runs inside it, with the rest of the step


def test_archival_insert_longer_than_the_embedder_reads_is_stored_in_chunks(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    class ShortSighted(LetterEmbedder):
        max_tokens = 20

        def count_tokens(self, text: str) -> int:
            return len(text.split())

    agent = make_agent(embedder=ShortSighted)
    sentences = [f"Fact {i} is that the {i}th lantern is painted blue." for i in range(8)]
    backend.add(call("archival_memory_insert", content=" ".join(sentences), request_heartbeat=False))
    result = agent.send("remember these")
    assert "overlapping passages" in next(e.text for e in result.events if e.kind == "result")
    texts = [p.text for p in storage.iter_passages("sam")]
    assert len(texts) > 1 and all(len(t.split()) <= 20 for t in texts)
    assert all(any(s in t for t in texts) for s in sentences)


class SummarizingBackend(ScriptedBackend):
    """Answers the (unconstrained) summary call itself; constrained calls come from the script."""

    def complete(self, request: CompletionRequest) -> Completion:
        if request.constraint is None:
            self.requests.append(request)
            return Completion(
                text="We talked about numbered replies.", usage=Usage(prompt_tokens=self.count_tokens(request.prompt))
            )
        return super().complete(request)


def test_memory_pressure_alert_then_summary_keeps_recall(make_agent: MakeAgent, storage: Any) -> None:
    backend = SummarizingBackend()
    agent = make_agent(context_window=2000, limits=Limits(max_tokens=128, reply_step=False))
    agent.backend = backend
    alerts: list[str] = []
    for i in range(16):
        backend.add(call("send_message", "reply", message=f"Reply number {i} " + "blah " * 20))
        result = agent.send(f"message {i} " + "words " * 20)
        alerts += [e.text for e in result.events if e.kind == "alert"]
    assert any("memory pressure" in a for a in alerts)
    assert any("summarized" in a for a in alerts)
    summary_requests = [r for r in backend.requests if r.constraint is None]
    assert summary_requests, "the summary call must go out without the function grammar"
    assert "Reply number 0" in summary_requests[0].prompt  # what the agent said is summarized too
    record = storage.get_agent("sam")
    assert len(record.in_context) < len(stored(storage))
    first = storage.get_messages("sam", record.in_context[:1])[0]
    assert "We talked about numbered replies." in events.read(first.content)["message"]
    assert storage.count_messages("sam") >= 48


def test_context_that_cannot_fit_is_a_clear_error(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent(context_window=600, limits=Limits(max_tokens=200, reply_step=False))
    fixed = backend.count_tokens(agent._prompt([]).text)
    needed = fixed + 200 + 256
    message = rf"context window 600 is too small for this agent: .* take {fixed} tokens and 200 are reserved .* at least {needed} are needed; raise --context-window"
    with pytest.raises(ContextOverflowError, match=message):
        agent.check_window()
    with pytest.raises(ContextOverflowError, match=message):
        agent.send("hi")
    assert storage.get_agent("sam").settings["pending_message"] == "hi"
    make_agent(context_window=needed, limits=Limits(max_tokens=200, reply_step=False)).check_window()  # just enough


def test_an_edit_by_any_function_shows_the_new_block_in_its_result(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    """A plugin's function that edits core memory gets the same treatment as the builtin ones."""
    from pydantic import BaseModel

    from memgpt.functions.memory import FUNCTIONS, schema_of
    from memgpt.functions.spec import FunctionSpec

    class NoArgs(BaseModel):
        pass

    def forget_likes(agent: Any) -> str:
        agent.core_memory.blocks["human"] = "Name: unknown"
        return "Forgot what they like."

    spec = FunctionSpec(
        name="forget_likes", schema=schema_of("forget_likes", "Forget likes.", NoArgs, heartbeat=False), handler=forget_likes
    )
    agent = make_agent(functions=(*FUNCTIONS, spec))
    backend.add(call("forget_likes"))
    result = agent.send("forget what I like")
    (text,) = [e.text for e in result.events if e.kind == "result"]
    assert text == "Forgot what they like.\nThe human block now reads:\nName: unknown"


def _plugin_function(name: str, handler: Callable[..., str]) -> Any:
    from pydantic import BaseModel

    from memgpt.functions.memory import schema_of
    from memgpt.functions.spec import FunctionSpec

    class NoArgs(BaseModel):
        pass

    return FunctionSpec(name=name, schema=schema_of(name, "A plugin's function.", NoArgs, heartbeat=False), handler=handler)


def test_a_function_error_is_shown_to_the_model_and_the_edit_undone(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    from memgpt.functions.memory import FUNCTIONS
    from memgpt.plugin import FunctionError

    def lookup(agent: Any) -> str:
        agent.core_memory.blocks["human"] = "half-edited"
        raise FunctionError("the catalogue has no such book; ask the user for its title")

    agent = make_agent(functions=(*FUNCTIONS, _plugin_function("lookup", lookup)))
    backend.add(call("lookup"), call("send_message", message="Which book?"))
    result = agent.send("find my book")
    (shown,) = [e for e in result.events if e.kind == "result" and e.function == "lookup"]
    assert shown.text == "the catalogue has no such book; ask the user for its title"
    assert shown.data == {"status": "Failed"}
    assert result.replies == ["Which book?"]  # the failure earned a heartbeat
    returned = events.read(stored(storage)[2].content)
    assert returned is not None and returned["status"] == "Failed" and returned["message"] == shown.text
    assert agent.core_memory.blocks["human"] == storage.get_agent("sam").core_memory["human"] == "Name: unknown\nLikes: tea"


def test_any_other_exception_in_a_function_is_a_logged_bug_the_model_sees_as_internal(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An accidental ValueError is not a message for the model: it is logged (traceback at DEBUG) and the
    model reads a generic failure; the step commits as any failed call does."""
    from memgpt.functions.memory import FUNCTIONS

    def buggy(agent: Any) -> str:
        return str(int("not a number"))  # ValueError: a bug, not a message for the model

    agent = make_agent(functions=(*FUNCTIONS, _plugin_function("buggy", buggy)))
    backend.add(call("buggy"), call("send_message", message="Sorry, that failed."))
    with caplog.at_level("DEBUG", logger="memgpt.agent"):
        result = agent.send("do the thing")
    (shown,) = [e.text for e in result.events if e.kind == "result" and e.function == "buggy"]
    assert shown == "function failed: internal error"
    assert "invalid literal" not in shown
    assert result.replies == ["Sorry, that failed."]
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "buggy" in warning.getMessage() and "ValueError" in warning.getMessage() and warning.exc_info is None
    (traced,) = [r for r in caplog.records if r.exc_info is not None]
    assert traced.levelname == "DEBUG" and isinstance(traced.exc_info[1], ValueError)  # type: ignore[index]
    roles = [m.role for m in stored(storage)]
    assert roles == ["user", "assistant", "function", "user", "assistant", "function"]  # committed, nothing lost
    returned = events.read(stored(storage)[2].content)
    assert returned is not None and returned["status"] == "Failed" and returned["message"] == shown


def test_a_handler_gets_a_narrow_context_not_the_agent(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    from memgpt.functions.memory import FUNCTIONS

    seen: list[Any] = []

    def look(context: Any) -> str:
        seen.append(context)
        found, total = context.search_recall("Oslo", limit=5)
        return f"{context.name}: {total} {found[0].role}; {context.archival_count()} passages"

    agent = make_agent(functions=(*FUNCTIONS, _plugin_function("look", look)))
    backend.add(call("send_message", message="Noted."), call("look"), call("send_message", message="Done."))
    agent.send("I live in Oslo")
    result = agent.send("look it up")
    (shown,) = [e.text for e in result.events if e.kind == "result" and e.function == "look"]
    assert shown == "sam: 1 user; 0 passages"
    (context,) = seen
    assert context is not agent and context.core_memory is agent.core_memory
    assert context.now().tzinfo is not None
    for reach in ("storage", "backend", "wrapper", "record", "messages", "send", "embed"):
        assert not hasattr(context, reach), reach


def test_an_edit_that_would_crowd_out_the_conversation_is_refused(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    probe = make_agent(context_window=100_000, limits=Limits(max_tokens=200, reply_step=False))
    fixed = backend.count_tokens(probe._prompt([]).text)
    agent = make_agent(context_window=fixed + 200 + 256 + 20, limits=Limits(max_tokens=200, reply_step=False))
    agent.check_window()  # fits, with 20 tokens (80 scripted characters) to spare
    backend.add(
        call("core_memory_append", name="human", content="Hobbies: " + "chess, " * 30, request_heartbeat=True),
        call("core_memory_append", name="human", content="Pet: cat", request_heartbeat=False),
    )
    result = agent.send("I play chess and have a cat")
    refused, accepted = [e.text for e in result.events if e.kind == "result"]
    assert refused.startswith("edit refused: core memory would take the prompt to ") and "core_memory_replace" in refused
    assert accepted.startswith("Appended to human")
    assert storage.get_agent("sam").core_memory["human"] == "Name: unknown\nLikes: tea\nPet: cat"
    agent.check_window()  # still usable


def test_a_whole_block_is_replaced_saved_and_shown_from_the_next_step(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    from memgpt.memory.core import MemoryEditError

    agent = make_agent()
    agent.replace_memory_block("human", "Name: Ada")
    saved = storage.get_agent("sam")
    assert saved.core_memory["human"] == "Name: Ada" and saved.settings["core_memory_shown"]["human"] == "Name: Ada"
    assert "Name: Ada" in core_section(agent.render_prompt())
    for name, text in (("diary", "x"), ("human", "x" * 2001)):
        with pytest.raises(MemoryEditError):
            agent.replace_memory_block(name, text)
    assert agent.core_memory.blocks["human"] == storage.get_agent("sam").core_memory["human"] == "Name: Ada"
    tight = make_agent(context_window=backend.count_tokens(agent.render_prompt()) + 1024 + 256 + 10)
    with pytest.raises(ContextOverflowError):
        tight.replace_memory_block("human", "Name: Ada\n" + "likes: tea, " * 150)
    assert tight.core_memory.blocks["human"] == storage.get_agent("sam").core_memory["human"] == "Name: Ada"
    assert tight.shown_memory().blocks["human"] == "Name: Ada"


def test_resume_sees_the_same_history_and_memory(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_append", name="human", content="City: Oslo", request_heartbeat=True),
        call("send_message", message="Oslo!"),
    )
    agent.send("I live in Oslo")
    again = make_agent()
    assert [m.id for m in again.context_messages()] == [m.id for m in agent.context_messages()]
    assert "City: Oslo" in again.core_memory.blocks["human"]


def test_past_calls_are_replayed_in_the_next_prompt(make_agent: MakeAgent, backend: ScriptedBackend) -> None:
    agent = make_agent()
    backend.add(call("send_message", "first thought", message="Reply one"), call("send_message", message="Reply two"))
    agent.send("a")
    agent.send("b")
    assert "Reply one" in backend.requests[1].prompt and "first thought" in backend.requests[1].prompt


def test_pop_and_rethink(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(call("send_message", "old thought", message="one"), call("send_message", message="two"))
    agent.send("a")
    agent.send("b")
    assert agent.rethink("new thought")
    assert agent.pop(1) == 3
    assert [m.role for m in agent.context_messages()] == ["user", "assistant", "function"]
    assert storage.count_messages("sam") == 7  # popped and rethought messages stay in recall
    assert agent.context_messages()[1].function_call.inner_thoughts == "old thought"


def test_a_repeated_call_is_not_run_again_and_ends_the_chain(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent()
    same = call("archival_memory_insert", "store it", content="The sky is blue", request_heartbeat=True)
    backend.add(same, same, same)
    result = agent.send("remember the sky")
    assert result.steps == 2 and len(backend.script) == 1
    statuses = [e.data["status"] for e in result.events if e.kind == "result"]
    assert statuses == ["OK", "Failed"]
    assert storage.count_passages("sam") == 1


def test_appending_a_line_the_block_already_holds_is_refused(
    make_agent: MakeAgent, backend: ScriptedBackend, storage: Any
) -> None:
    agent = make_agent()
    backend.add(
        call("core_memory_append", name="human", content="Likes: tea", request_heartbeat=False),
        call("send_message", message="I know"),
    )
    result = agent.send("I like tea")
    failed = [e.text for e in result.events if e.kind == "result" and e.data["status"] == "Failed"]
    assert failed and "already holds" in failed[0]
    assert storage.get_agent("sam").core_memory["human"] == "Name: unknown\nLikes: tea"


def test_failed_calls_in_a_row_hand_control_back(make_agent: MakeAgent, backend: ScriptedBackend, storage: Any) -> None:
    agent = make_agent()
    backend.add(
        *[
            call("core_memory_replace", name="human", old_content=f"nothing like {i}", new_content="x", request_heartbeat=True)
            for i in range(4)
        ]
    )
    result = agent.send("edit yourself")
    assert result.steps == 2 and len(backend.script) == 2
    assert result.events[-1].kind == "alert" and "2 failed calls in a row" in result.events[-1].text
    assert storage.get_agent("sam").core_memory["human"] == "Name: unknown\nLikes: tea"


def test_long_messages_among_the_last_few_are_summarized_out_instead_of_blocking_every_later_turn(
    make_agent: MakeAgent, storage: Any
) -> None:
    """Two pasted messages, each cut to the most one message may take, fill the window with messages the
    summarizer normally never moves (the last few): they must go out too (they are whole in recall), or the
    agent could never answer again."""
    backend = SummarizingBackend()
    agent = make_agent(context_window=2000, limits=Limits(max_tokens=128, reply_step=False))
    agent.backend = backend
    for i in range(3):
        backend.add(call("send_message", "reply", message=f"Got paste {i}."))
        result = agent.send(f"paste {i}: " + "lorem ipsum dolor sit amet " * 400)
        assert [e.text for e in result.events if e.kind == "error"] == [], result.events
        assert [e for e in result.events if e.kind == "assistant"], result.events
    backend.add(call("send_message", "reply", message="Still here."))
    after = agent.send("Are you still there?")
    assert [e.text for e in after.events if e.kind == "assistant"] == ["Still here."]
    assert storage.count_messages("sam") >= 8  # every paste is kept whole in recall
