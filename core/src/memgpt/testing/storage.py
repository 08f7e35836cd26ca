"""``StorageContract``: the tests every storage engine (``register_storage``) must pass. Subclass it and
provide an ``open_store`` fixture: a function that opens a new handle on one fresh, empty store per test
(calling it twice gives two handles on the same store, as two processes would have)::

    class TestMyStorage(StorageContract):
        storage_class = MyStorage

        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda cls=MyStorage: cls(tmp_path / "store")

``cls`` is ``storage_class`` or a subclass of it with more ``migrations`` (the migration tests). What it
checks, through the ``memgpt.storage.base.Storage`` protocol only:

- agents: exact round trips (UTC datetimes), sorted listing, upserts that keep memory, deletes that take
  the agent's memory with them, memory of an unknown agent refused;
- recall: ids increasing and never reused, lookups by id in the asked order, full-text search over the
  conversation only (user text and ``send_message``; never JSON keys, inner thoughts, heartbeats or
  function results), stemming, all-words → any-word → prefix → substring fallbacks, any text a valid
  query, paging with totals, date ranges inclusive at both ends in any time zone;
- archival: cosine ranking with scores (ties to the older passage), paging, a new passage found by the
  next search (also from another handle), rolled-back passages gone, metadata, iteration in id order,
  the stored embeddings read back in batches (a copied one unchanged), one embedding size per agent;
- transactions: all or nothing, nesting joins the outer block, a failed inner block undoes only itself,
  another handle or thread never sees half a step, ``kill -9`` inside a step leaves the previous step;
- the agent loop on the engine: an unanswered user message (or several) stays pending across a failure
  and a reopen, and a step that fails leaves nothing of itself;
- the session lock (``lock(store, agent)``): one session per agent, across handles and processes, and
  released when its process dies;
- migrations (override the hooks under "migration hooks", else these tests skip): a newer schema is
  refused, an added migration runs once on an older store and keeps its data, a failed one leaves the
  previous version, several processes opening a fresh store at once all succeed.

Import this module only from tests (it imports pytest).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt.agent import events
from memgpt.contract.types import FunctionCall, Message
from memgpt.errors import AgentBusyError, BackendUnreachable, StorageError
from memgpt.storage.base import AgentRecord, Storage

OpenStore = Callable[..., Any]


def user(text: str, at: datetime | None = None) -> Message:
    """A user message as the agent stores it (a ``user_message`` event)."""
    event = events.user_message(text, moment=datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC))
    return Message(role="user", content=event) if at is None else Message(role="user", content=event, created_at=at)


def says(text: str, thoughts: str = "thinking", at: datetime | None = None) -> Message:
    """What the assistant said with ``send_message``."""
    call = FunctionCall(name="send_message", arguments={"inner_thoughts": thoughts, "message": text})
    return (
        Message(role="assistant", function_call=call)
        if at is None
        else Message(role="assistant", function_call=call, created_at=at)
    )


def unit(v: np.ndarray) -> np.ndarray:
    scaled: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return scaled


class StorageContract:
    """Base class of every storage engine's contract tests (see the module docstring)."""

    #: The engine's class (the migration tests subclass it with more ``migrations``).
    storage_class: Any = None
    #: Python statements a child process runs to open the same store as ``open_store`` into ``store``
    #: (the kill -9 test); ``{location}`` is replaced by ``child_location``'s value. None skips that test.
    child_open: str | None = None

    # ------------------------------------------------------------------ fixtures and hooks

    @pytest.fixture
    def open_store(self) -> OpenStore:
        pytest.fail(f"{type(self).__name__} must define an `open_store` fixture (see memgpt.testing.storage)")

    @pytest.fixture
    def child_location(self) -> str:
        """What ``child_open`` needs to find this test's store (a path, a URI)."""
        pytest.skip(f"{type(self).__name__} does not say how a child process opens its store")

    @pytest.fixture
    def store(self, open_store: OpenStore) -> Iterator[Any]:
        storage = open_store()
        storage.save_agent(AgentRecord(name="sam"))
        yield storage
        storage.close()

    def lock(self, store: Any, agent: str) -> Any:
        """An unacquired session lock on ``agent`` (``acquire()`` raises ``AgentBusyError``, ``release()``,
        ``held``); by default the engine's ``lock_agent``."""
        return store.lock_agent(agent)

    # migration hooks: override all four to run the migration tests

    def schema_version(self, store: Any) -> int:
        pytest.skip(f"{type(self).__name__} has no schema versions to test")

    def set_schema_version(self, store: Any, version: int) -> None:
        pytest.skip(f"{type(self).__name__} has no schema versions to test")

    def add_column_migration(self, table: str, column: str, *, fail: bool = False) -> Any:
        """A migration in the engine's own form that adds ``column`` to ``table`` (then raises
        ``RuntimeError("migration bug")`` when ``fail``)."""
        pytest.skip(f"{type(self).__name__} has no migrations to test")

    def columns(self, store: Any, table: str) -> set[str]:
        pytest.skip(f"{type(self).__name__} has no migrations to test")

    # ------------------------------------------------------------------ agents

    def test_implements_the_storage_protocol(self, store: Any) -> None:
        assert isinstance(store, Storage)

    def test_agent_record_round_trips_exactly(self, store: Any) -> None:
        created = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=-8)))
        record = AgentRecord(
            name="ana 'quoted' ü",
            settings={"preset": "memgpt_chat", "model": {"context_window": 8192}, "flags": [1, None, True, 2.5]},
            core_memory={"persona": "I am Ana. 🌱", "human": 'Name: Bob\nLikes: "quotes" and ünïcode'},
            in_context=[3, 1, 2],
            created_at=created,
            updated_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
        )
        store.save_agent(record)
        loaded = store.get_agent(record.name)
        assert loaded == record
        assert loaded is not None and loaded.created_at.tzinfo == UTC and loaded.updated_at.tzinfo == UTC
        assert loaded.created_at == datetime(2024, 3, 1, 7, 59, 59, 123456, tzinfo=UTC)

    def test_list_agents_sorted_and_get_missing(self, store: Any) -> None:
        store.save_agent(AgentRecord(name="bob"))
        store.save_agent(AgentRecord(name="alice"))
        assert [r.name for r in store.list_agents()] == ["alice", "bob", "sam"]
        assert store.get_agent("nobody") is None

    def test_saving_again_updates_without_losing_memory(self, store: Any) -> None:
        store.add_messages("sam", [user("keep me")])
        store.add_passages("sam", ["a passage"], np.ones((1, 4)))
        record = store.get_agent("sam")
        record.core_memory["human"] = "changed"
        store.save_agent(record)
        assert store.get_agent("sam").core_memory == {"human": "changed"}
        assert store.count_messages("sam") == 1 and store.count_passages("sam") == 1

    def test_delete_agent_removes_its_messages_and_passages(self, store: Any) -> None:
        store.save_agent(AgentRecord(name="other"))
        store.add_messages("sam", [user("pizza for sam"), says("noted, pizza")])
        store.add_messages("other", [user("pizza for other")])
        store.add_passages("sam", ["sam's fact"], np.ones((1, 4)))
        store.add_passages("other", ["other's fact"], np.ones((1, 4)))
        assert store.search_passages("sam", np.ones(4))[1] == 1
        assert store.delete_agent("sam") is True
        assert store.get_agent("sam") is None
        assert store.count_messages("sam") == 0 and store.count_passages("sam") == 0
        assert store.search_messages("sam", "pizza") == ([], 0)
        assert store.search_passages("sam", np.ones(4)) == ([], 0)
        assert store.search_messages("other", "pizza")[1] == 1 and store.count_passages("other") == 1
        assert store.delete_agent("sam") is False

    def test_memory_of_an_unknown_agent_is_refused(self, store: Any) -> None:
        with pytest.raises(StorageError, match=r"no agent named 'ghost'"):
            store.add_messages("ghost", [user("hi")])
        with pytest.raises(StorageError, match=r"no agent named 'ghost'"):
            store.add_passages("ghost", ["x"], np.ones((1, 4)))

    def test_reopening_keeps_everything(self, store: Any, open_store: OpenStore) -> None:
        [stored] = store.add_messages("sam", [user("persisted")])
        store.add_passages("sam", ["persisted passage"], np.ones((1, 4)))
        store.close()
        again = open_store()
        try:
            assert again.get_messages("sam", [stored.id]) == [stored]
            assert [p.text for p in again.iter_passages("sam")] == ["persisted passage"]
        finally:
            again.close()

    def test_a_closed_store_says_so(self, store: Any) -> None:
        store.close()
        with pytest.raises(StorageError, match="closed"):
            store.list_agents()

    # ------------------------------------------------------------------ recall memory

    def test_messages_round_trip_with_ids_in_order(self, store: Any) -> None:
        at = datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=UTC)
        sent = [
            Message(role="system", content="alert", created_at=at),
            user("hi", at=at),
            Message(
                role="assistant",
                content=None,
                function_call=FunctionCall(
                    name="core_memory_append", arguments={"name": "human", "content": "ü", "request_heartbeat": True}
                ),
                created_at=at,
            ),
            Message(role="function", name="core_memory_append", content='{"status": "OK", "message": null}', created_at=at),
        ]
        stored = store.add_messages("sam", sent)
        ids = [m.id for m in stored]
        assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == 4
        assert [m.model_copy(update={"id": None}) for m in stored] == sent
        assert store.get_messages("sam", [ids[2], ids[0]]) == [stored[2], stored[0]]
        assert store.count_messages("sam") == 4
        assert store.recent_messages("sam", 2) == stored[2:]
        assert store.recent_messages("sam", 0) == []

    def test_message_ids_are_never_reused(self, store: Any) -> None:
        [first] = store.add_messages("sam", [user("one")])
        store.delete_agent("sam")
        store.save_agent(AgentRecord(name="sam"))
        [second] = store.add_messages("sam", [user("two")])
        assert second.id > first.id
        with pytest.raises(StorageError):
            store.get_messages("sam", [first.id])

    def test_unknown_message_ids_are_an_error_not_a_silent_gap(self, store: Any) -> None:
        [stored] = store.add_messages("sam", [user("one")])
        store.save_agent(AgentRecord(name="other"))
        [theirs] = store.add_messages("other", [user("not sam's")])
        with pytest.raises(StorageError, match=r"no messages with ids \[999999\]"):
            store.get_messages("sam", [stored.id, 999999])
        with pytest.raises(StorageError):
            store.get_messages("sam", [theirs.id])  # another agent's message is not sam's

    def test_already_stored_messages_are_refused(self, store: Any) -> None:
        [stored] = store.add_messages("sam", [user("once")])
        with pytest.raises(StorageError, match="already stored"):
            store.add_messages("sam", [stored])
        assert store.count_messages("sam") == 1

    def test_search_finds_user_text_and_what_the_assistant_said(self, store: Any) -> None:
        store.add_messages(
            "sam",
            [
                user("I really like pizza with olives"),
                says("Pizza with olives sounds great!", thoughts="the user talks about food"),
                user("what is the weather"),
                says("It is sunny.", thoughts="pizza pizza pizza"),  # inner thoughts are not conversation
                Message(role="user", content="plain pizza text"),  # a user message that is not an event
            ],
        )
        found, total = store.search_messages("sam", "pizza")
        assert total == 3
        assert {m.role for m in found} == {"user", "assistant"}

    def test_search_matches_text_not_the_json_around_it(self, store: Any) -> None:
        store.add_messages("sam", [user("hello there"), says("hi!")])
        store.add_messages("sam", [Message(role="user", content=events.heartbeat("pizza time"))])
        store.add_messages("sam", [Message(role="function", name="send_message", content=events.function_result("OK", "pizza"))])
        for key in ("type", "message", "user_message", "time", "inner_thoughts", "send_message"):
            assert store.search_messages("sam", key) == ([], 0), key
        assert store.search_messages("sam", "pizza") == ([], 0)

    def test_search_stems_and_falls_back_to_any_word_then_prefixes(self, store: Any) -> None:
        store.add_messages("sam", [user("My dogs love running"), user("cats sleep"), user("the weather is cold")])
        found, total = store.search_messages("sam", "dog running")
        assert total == 1 and "dogs" in (found[0].content or "")
        found, total = store.search_messages("sam", "do my cats like dogs?")  # no message has every word
        assert total == 2
        assert [m.content for m in store.search_messages("sam", "weath")[0]] == [user("the weather is cold").content]

    def test_messages_with_every_word_come_first(self, store: Any) -> None:
        store.add_messages("sam", [user("green apples"), user("red apples and green pears"), user("green grass")])
        found, total = store.search_messages("sam", "green apples")
        assert total == 2  # the messages with both words; the grass is not a match while those exist
        assert {m.content for m in found} == {user("green apples").content, user("red apples and green pears").content}

    @pytest.mark.parametrize(
        "query",
        ['"', 'pizza"', "NOT", "pizza AND", "OR OR", "(", "col:pizza", "pizza*", "^pizza", "NEAR(a b)", "-pizza", "''",
         "%", "_", "\\", "!pizza", "pizza & | !", "<->", "pizza:*", "a:b:c"],
    )  # fmt: skip
    def test_query_syntax_in_queries_is_just_text(self, store: Any, query: str) -> None:
        store.add_messages("sam", [user("pizza is great"), user("100% sure_thing")])
        found, total = store.search_messages("sam", query)
        assert total == len(found)

    def test_punctuation_queries_fall_back_to_substring(self, store: Any) -> None:
        store.add_messages("sam", [user("is it 100% sure?"), user("nope")])
        found, total = store.search_messages("sam", "%")
        assert total == 1 and "100%" in (found[0].content or "")
        assert store.search_messages("sam", "   ") == ([], 0)

    # Every engine's subclass runs this same method (differing executors): each gets its own fresh store.
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors, HealthCheck.too_slow],
    )
    @given(query=st.text(max_size=40))
    def test_any_text_is_a_valid_query(self, store: Any, query: str) -> None:
        if store.count_messages("sam") == 0:
            store.add_messages("sam", [user("some words here"), says("more words")])
        found, total = store.search_messages("sam", query, limit=5)
        assert 0 <= len(found) <= min(5, total)

    def test_search_is_paged_with_a_total(self, store: Any) -> None:
        store.add_messages("sam", [user(f"note {i} about apples") for i in range(12)])
        pages = [store.search_messages("sam", "apples", limit=5, offset=o) for o in (0, 5, 10, 15)]
        assert [len(p[0]) for p in pages] == [5, 5, 2, 0]
        assert {p[1] for p in pages} == {12}
        assert len({m.id for p in pages for m in p[0]}) == 12
        with pytest.raises(StorageError, match="offset"):
            store.search_messages("sam", "apples", offset=-1)

    def test_search_is_per_agent(self, store: Any) -> None:
        store.save_agent(AgentRecord(name="other"))
        store.add_messages("other", [user("secret pizza")])
        assert store.search_messages("sam", "pizza") == ([], 0)
        assert store.search_messages("sam", "%") == ([], 0)

    def test_date_range_includes_both_end_dates(self, store: Any) -> None:
        def day(d: int, h: int = 12) -> datetime:
            return datetime(2024, 5, d, h, tzinfo=UTC)

        store.add_messages(
            "sam",
            [
                user("april 30", at=datetime(2024, 4, 30, 23, 59, 59, 999999, tzinfo=UTC)),
                user("may 1 start", at=day(1, 0)),
                says("may 2", at=day(2)),
                user("may 3 last second", at=datetime(2024, 5, 3, 23, 59, 59, 999999, tzinfo=UTC)),
                user("may 4", at=day(4, 0)),
                Message(role="function", name="send_message", content="{}", created_at=day(2)),
            ],
        )
        found, total = store.messages_between("sam", date(2024, 5, 1), date(2024, 5, 3), limit=10)
        assert total == 3
        assert [m.created_at.day for m in found] == [1, 2, 3]
        assert store.messages_between("sam", date(2024, 5, 3), date(2024, 5, 3))[1] == 1
        assert store.messages_between("sam", date(2024, 5, 3), date(2024, 5, 1))[1] == 3
        page, total = store.messages_between("sam", date(2024, 4, 1), date(2024, 6, 1), limit=2, offset=4)
        assert total == 5 and [m.created_at.day for m in page] == [4]

    def test_date_range_in_another_timezone(self, store: Any) -> None:
        store.add_messages("sam", [user("late evening", at=datetime(2024, 5, 2, 1, 0, tzinfo=UTC))])
        new_york = timezone(timedelta(hours=-4))
        assert store.messages_between("sam", date(2024, 5, 1), date(2024, 5, 1), tz=new_york)[1] == 1
        assert store.messages_between("sam", date(2024, 5, 1), date(2024, 5, 1))[1] == 0

    # ------------------------------------------------------------------ archival memory

    def test_archival_search_ranks_by_cosine_with_scores(self, store: Any) -> None:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(50, 16)).astype(np.float32)
        ids = store.add_passages("sam", [f"p{i}" for i in range(50)], vectors * 3.0)  # not normalised on purpose
        query = rng.normal(size=16)
        expected = np.argsort(-(unit(vectors) @ unit(query)), kind="stable")
        found, total = store.search_passages("sam", query, limit=5)
        assert total == 50
        assert [p.id for p in found] == [ids[i] for i in expected[:5]]
        assert [p.text for p in found] == [f"p{i}" for i in expected[:5]]
        scores = [p.score for p in found]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(float(unit(vectors[expected[0]]) @ unit(query)), abs=1e-5)

    def test_equal_scores_go_to_the_older_passage(self, store: Any) -> None:
        ids = store.add_passages("sam", ["a", "b", "c"], np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]))
        found, _ = store.search_passages("sam", np.array([1.0, 0.0]), limit=2)
        assert [p.id for p in found] == ids[:2]

    def test_archival_pages_do_not_overlap(self, store: Any) -> None:
        rng = np.random.default_rng(1)
        store.add_passages("sam", [f"p{i}" for i in range(13)], rng.normal(size=(13, 8)))
        query = rng.normal(size=8)
        pages = [store.search_passages("sam", query, offset=o) for o in (0, 5, 10, 15)]
        assert [len(p) for p, _ in pages] == [5, 5, 3, 0]
        assert {t for _, t in pages} == {13}
        ranked = [p.score for page, _ in pages for p in page]
        assert ranked == sorted(ranked, reverse=True)
        assert len({p.id for page, _ in pages for p in page}) == 13

    def test_an_insert_is_visible_to_the_next_search(self, store: Any) -> None:
        rng = np.random.default_rng(2)
        store.add_passages("sam", [f"p{i}" for i in range(20)], rng.normal(size=(20, 8)))
        query = rng.normal(size=8)
        before, _ = store.search_passages("sam", query, limit=1)
        [new_id] = store.add_passages("sam", ["exactly the query"], query.reshape(1, -1))
        after, total = store.search_passages("sam", query, limit=1)
        assert total == 21 and after[0].id == new_id and after[0].id != before[0].id
        assert after[0].score == pytest.approx(1.0, abs=1e-5)

    def test_an_insert_through_another_handle_is_visible(self, store: Any, open_store: OpenStore) -> None:
        rng = np.random.default_rng(3)
        store.add_passages("sam", ["old"], rng.normal(size=(1, 8)))
        query = rng.normal(size=8)
        assert store.search_passages("sam", query)[1] == 1
        other = open_store()
        try:
            [new_id] = other.add_passages("sam", ["new"], query.reshape(1, -1))
        finally:
            other.close()
        found, total = store.search_passages("sam", query, limit=1)
        assert total == 2 and found[0].id == new_id

    def test_an_agent_recreated_through_another_handle_is_seen_fresh(self, store: Any, open_store: OpenStore) -> None:
        store.add_passages("sam", ["old"], np.ones((1, 4)))
        assert store.search_passages("sam", np.ones(4))[1] == 1
        other = open_store()
        try:
            other.delete_agent("sam")
            other.save_agent(AgentRecord(name="sam"))
            other.add_passages("sam", ["fresh a", "fresh b"], -np.ones((2, 4)))
        finally:
            other.close()
        found, total = store.search_passages("sam", np.ones(4))
        assert total == 2 and {p.text for p in found} == {"fresh a", "fresh b"}

    def test_rolled_back_passages_are_not_found(self, store: Any) -> None:
        store.add_passages("sam", ["kept"], np.array([[1.0, 0.0]]))
        assert store.search_passages("sam", np.array([1.0, 0.0]))[1] == 1
        with pytest.raises(RuntimeError), store.transaction():
            store.add_passages("sam", ["rolled back"], np.array([[0.0, 1.0]]))
            assert store.search_passages("sam", np.array([0.0, 1.0]), limit=1)[0][0].text == "rolled back"
            raise RuntimeError("step failed")
        found, total = store.search_passages("sam", np.array([0.0, 1.0]))
        assert total == 1 and [p.text for p in found] == ["kept"]
        assert store.count_passages("sam") == 1

    def test_metadata_and_iteration(self, store: Any) -> None:
        ids = store.add_passages("sam", ["a", "b"], np.eye(2), [{"source": "notes.md", "chunk": 0}, {"source": "ü.txt"}])
        passages = list(store.iter_passages("sam"))
        assert [p.id for p in passages] == ids and ids == sorted(ids)
        assert [p.metadata for p in passages] == [{"source": "notes.md", "chunk": 0}, {"source": "ü.txt"}]
        assert all(p.score is None and p.created_at.tzinfo is not None and p.agent == "sam" for p in passages)
        assert store.add_passages("sam", [], np.empty((0, 2))) == []

    def test_iteration_crosses_batches(self, store: Any) -> None:
        store.add_passages("sam", [str(i) for i in range(2500)], np.ones((2500, 2)))
        assert [p.text for p in store.iter_passages("sam")] == [str(i) for i in range(2500)]

    def test_passages_come_with_their_stored_embeddings_in_batches(self, store: Any) -> None:
        rng = np.random.default_rng(4)
        vectors = rng.normal(size=(7, 8)) * 3.0  # not normalised on purpose
        ids = store.add_passages("sam", [f"p{i}" for i in range(7)], vectors, [{"n": i} for i in range(7)])
        store.save_agent(AgentRecord(name="other"))
        store.add_passages("other", ["not sam's"], np.ones((1, 8)))
        batches = list(store.passage_batches("sam", size=3))
        assert [len(passages) for passages, _ in batches] == [3, 3, 1]
        for passages, matrix in batches:
            assert isinstance(matrix, np.ndarray) and matrix.dtype == np.float32 and matrix.shape == (len(passages), 8)
        passages = [p for batch, _ in batches for p in batch]
        assert [p.id for p in passages] == ids
        assert passages == list(store.iter_passages("sam"))
        stored = np.vstack([matrix for _, matrix in batches])
        np.testing.assert_allclose(stored, unit(vectors), atol=1e-6)  # as stored: unit length
        # the stored embeddings are what search ranks by
        found, _ = store.search_passages("sam", vectors[5], limit=1)
        assert found[0].id == ids[5] and found[0].score == pytest.approx(float(stored[5] @ unit(vectors[5])), abs=1e-5)
        # copied into another agent, a stored embedding stays the same, bit for bit
        store.save_agent(AgentRecord(name="copy"))
        store.add_passages("copy", [p.text for p in passages], stored)
        [(_, copied)] = list(store.passage_batches("copy"))
        assert copied.tobytes() == stored.tobytes()
        assert [len(passages) for passages, _ in store.passage_batches("sam")] == [7]
        assert list(store.passage_batches("nobody")) == []
        with pytest.raises(StorageError, match="size"):
            list(store.passage_batches("sam", size=0))

    @pytest.mark.parametrize(
        ("texts", "embeddings", "metadata", "message"),
        [
            (["a", "b"], np.ones((1, 4)), None, "one embedding row per text"),
            (["a"], np.array([[np.nan, 1.0]]), None, "NaN"),
            (["a"], np.ones((1, 2)), [{}, {}], "metadata"),
        ],
    )
    def test_bad_inserts_are_refused_whole(self, store: Any, texts: Any, embeddings: Any, metadata: Any, message: str) -> None:
        with pytest.raises(StorageError, match=message):
            store.add_passages("sam", texts, embeddings, metadata)
        assert store.count_passages("sam") == 0

    def test_changing_embedding_size_is_explained(self, store: Any) -> None:
        store.add_passages("sam", ["384-d"], np.ones((1, 384)))
        with pytest.raises(StorageError, match=r"384.*768.*embedding model changed"):
            store.add_passages("sam", ["768-d"], np.ones((1, 768)))
        with pytest.raises(StorageError, match=r"768 dimensions.*384"):
            store.search_passages("sam", np.ones(768))
        store.search_passages("sam", np.ones(384))
        with pytest.raises(StorageError, match="embedding model changed"):
            store.add_passages("sam", ["768-d"], np.ones((1, 768)))
        assert store.count_passages("sam") == 1

    def test_agents_may_use_different_embedding_sizes(self, store: Any) -> None:
        store.save_agent(AgentRecord(name="big"))
        store.add_passages("sam", ["small"], np.ones((1, 8)))
        store.add_passages("big", ["large"], np.ones((1, 32)))
        assert [p.text for p in store.search_passages("sam", np.ones(8))[0]] == ["small"]
        assert [p.text for p in store.search_passages("big", np.ones(32))[0]] == ["large"]

    def test_search_on_an_empty_archive(self, store: Any) -> None:
        assert store.search_passages("sam", np.ones(8)) == ([], 0)
        assert store.search_passages("nobody", np.ones(8)) == ([], 0)

    # ------------------------------------------------------------------ transactions

    def test_writes_commit_together(self, store: Any, open_store: OpenStore) -> None:
        other = open_store()
        try:
            with store.transaction():
                [a, b] = store.add_messages("sam", [user("one"), user("two")])
                store.add_passages("sam", ["p"], np.ones((1, 4)))
                record = store.get_agent("sam")
                record.in_context = [a.id, b.id]
                store.save_agent(record)
                # nothing is visible to another handle before the commit
                assert (other.count_messages("sam"), other.count_passages("sam")) == (0, 0)
                assert other.get_agent("sam").in_context == []
            assert (other.count_messages("sam"), other.count_passages("sam")) == (2, 1)
            assert other.get_agent("sam").in_context == [a.id, b.id]
        finally:
            other.close()

    def test_an_exception_rolls_everything_back(self, store: Any) -> None:
        with pytest.raises(KeyboardInterrupt), store.transaction():
            store.add_messages("sam", [user("lost")])
            store.add_passages("sam", ["lost"], np.ones((1, 4)))
            store.save_agent(AgentRecord(name="sam", core_memory={"human": "lost"}))
            store.save_agent(AgentRecord(name="new"))
            raise KeyboardInterrupt  # Ctrl-C mid-step
        assert store.count_messages("sam") == 0 and store.count_passages("sam") == 0
        assert store.get_agent("sam").core_memory == {}
        assert store.get_agent("new") is None
        store.add_messages("sam", [user("the store works after a rollback")])
        assert store.count_messages("sam") == 1

    def test_nested_blocks_join_the_outer_transaction(self, store: Any, open_store: OpenStore) -> None:
        other = open_store()
        try:
            with pytest.raises(RuntimeError), store.transaction():
                with store.transaction():
                    store.add_messages("sam", [user("inner")])
                assert other.count_messages("sam") == 0  # the inner block did not commit on its own
                raise RuntimeError
        finally:
            other.close()
        assert store.count_messages("sam") == 0

    def test_a_failed_inner_block_undoes_only_its_own_writes(self, store: Any) -> None:
        with store.transaction():
            store.add_messages("sam", [user("outer")])
            with pytest.raises(StorageError), store.transaction():
                store.add_messages("sam", [user("inner")])
                store.add_messages("ghost", [user("fails")])
            store.add_messages("sam", [user("outer again")])
        assert [m.content for m in store.recent_messages("sam", 10)] == [user("outer").content, user("outer again").content]

    def test_each_method_alone_is_atomic(self, store: Any) -> None:
        with pytest.raises(StorageError):
            store.add_messages("sam", [user("fine"), user("fine too").model_copy(update={"id": 7})])
        assert store.count_messages("sam") == 0

    def test_another_thread_never_sees_half_a_step(self, store: Any) -> None:
        seen: list[int] = []
        started = threading.Event()

        def reader() -> None:
            started.set()
            seen.append(store.count_messages("sam"))

        with store.transaction():
            store.add_messages("sam", [user("a")])
            thread = threading.Thread(target=reader)
            thread.start()
            started.wait()
            time.sleep(0.05)
            store.add_messages("sam", [user("b")])
        thread.join()
        assert seen in ([0], [2])  # before or after the step, never inside it

    def test_kill_9_inside_a_step_leaves_the_previous_step(self, store: Any, child_location: str) -> None:
        if self.child_open is None:
            pytest.skip(f"{type(self).__name__} sets no child_open")
        store.close()
        code = self.child_open.replace("{location}", repr(child_location)) + _WRITER
        for _ in range(2):  # the second writer resumes on what the killed one left, and is killed too
            torn = _kill_inside_a_transaction(code, commits=3)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                self.child_open.replace("{location}", repr(child_location)) + _REPORT.replace("{torn}", str(torn)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == 0, child.stderr
        steps, messages, in_context, passages, ordered, of_torn = json.loads(child.stdout)
        assert steps in (torn - 1, torn)  # torn - 1 unless the kill came after its commit
        assert messages == in_context == 50 * steps and passages == 4 * steps and ordered
        assert of_torn == (50 if steps == torn else 0)

    # ------------------------------------------------------------------ the agent loop on this engine

    def test_an_unanswered_message_stays_pending_across_a_failure_and_a_reopen(self, store: Any, open_store: OpenStore) -> None:
        from memgpt.testing.scripted import ScriptedBackend, call, chat_agent

        record = AgentRecord(name="pat", core_memory={"persona": "p", "human": "h"})
        store.save_agent(record)
        down = BackendUnreachable("server is down", endpoint="http://127.0.0.1:9")
        agent = chat_agent(record, store, ScriptedBackend([down, down]))
        for text in ("first question", "second question"):
            with pytest.raises(BackendUnreachable):
                agent.send(text)
        reopened = open_store()
        try:
            again = reopened.get_agent("pat")
            assert again.settings["pending_message"] == "second question"
            assert again.settings["pending_earlier"] == ["first question"]
            assert reopened.count_messages("pat") == 0 and again.in_context == []  # the failed steps left nothing
            backend = ScriptedBackend([call("send_message", message="answering both")])
            resumed = chat_agent(again, reopened, backend)
            assert resumed.pending_messages == ["first question", "second question"]
            resumed.retry_pending()
            assert "first question" in backend.requests[0].prompt and "second question" in backend.requests[0].prompt
            final = reopened.get_agent("pat")
            assert "pending_message" not in final.settings and "pending_earlier" not in final.settings
            assert reopened.count_messages("pat") == len(final.in_context) > 0
        finally:
            reopened.close()

    def test_a_step_that_fails_inside_its_transaction_leaves_nothing(self, store: Any) -> None:
        from memgpt.testing.scripted import ScriptedBackend, call, chat_agent

        record = AgentRecord(name="pat", core_memory={"persona": "p", "human": "h"})
        store.save_agent(record)
        backend = ScriptedBackend([call("core_memory_append", name="human", content="likes tea", request_heartbeat=False)])
        agent = chat_agent(record, store, backend)
        real_add = store.add_messages

        def failing_add(agent_name: str, messages: Any) -> Any:
            raise StorageError("disk full (simulated)")

        store.add_messages = failing_add  # the step's commit fails after the edit ran in memory
        try:
            with pytest.raises(StorageError):
                agent.send("remember that I like tea")
        finally:
            store.add_messages = real_add
        saved = store.get_agent("pat")
        assert saved.core_memory["human"] == "h"  # the edit did not land without its step
        assert saved.settings["pending_message"] == "remember that I like tea"
        assert store.count_messages("pat") == 0

    # ------------------------------------------------------------------ the session lock

    def test_one_session_per_agent(self, store: Any, open_store: OpenStore) -> None:
        other = open_store()
        try:
            first = self.lock(store, "sam").acquire()
            assert first.held
            with pytest.raises(AgentBusyError, match="another memgpt session"):
                self.lock(other, "sam").acquire()
            elsewhere = self.lock(other, "bob").acquire()  # another agent is free
            elsewhere.release()
            first.release()
            assert not first.held
            again = self.lock(other, "sam").acquire()
            again.release()
        finally:
            other.close()

    def test_the_lock_of_a_killed_process_is_released(self, store: Any, open_store: OpenStore) -> None:
        if sys.platform != "linux":
            pytest.skip("forks the test process")
        context = multiprocessing.get_context("fork")
        ready = context.Event()

        def hold() -> None:
            child = open_store()
            held = self.lock(child, "sam").acquire()
            ready.set()
            time.sleep(600)
            held.release()

        holder = context.Process(target=hold, daemon=True)
        holder.start()
        try:
            assert ready.wait(60), "the child never took the lock"
            with pytest.raises(AgentBusyError):
                self.lock(store, "sam").acquire()
        finally:
            os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
            holder.join(30)
        deadline = time.monotonic() + 20  # the engine notices the dead client; no one has to unlock by hand
        while True:
            try:
                lock = self.lock(store, "sam").acquire()
                break
            except AgentBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        lock.release()

    # ------------------------------------------------------------------ migrations

    def test_newer_schema_is_refused(self, store: Any, open_store: OpenStore) -> None:
        self.set_schema_version(store, 99)
        store.close()
        with pytest.raises(StorageError, match=r"schema version 99.*upgrade memgpt"):
            open_store()

    def test_an_added_migration_runs_once_on_an_older_store(self, store: Any, open_store: OpenStore) -> None:
        assert self.storage_class is not None
        store.add_messages("sam", [user("before the migration")])
        version = self.schema_version(store)
        store.close()
        migration = self.add_column_migration("agents", "tags")
        calls: list[int] = []

        def counted(*args: Any) -> Any:
            calls.append(1)
            return migration(*args)

        newer_class = type("Newer", (self.storage_class,), {"migrations": (*self.storage_class.migrations, counted)})
        for _ in range(2):
            newer = open_store(newer_class)
            try:
                assert self.schema_version(newer) == version + 1
                assert "tags" in self.columns(newer, "agents")
                assert newer.count_messages("sam") == 1
            finally:
                newer.close()
        assert calls == [1]

    def test_a_failed_migration_leaves_the_previous_version(self, store: Any, open_store: OpenStore) -> None:
        assert self.storage_class is not None
        version = self.schema_version(store)
        store.close()
        broken = self.add_column_migration("agents", "half_done", fail=True)
        broken_class = type("Broken", (self.storage_class,), {"migrations": (*self.storage_class.migrations, broken)})
        with pytest.raises(RuntimeError, match="migration bug"):
            open_store(broken_class)
        reopened = open_store()
        try:
            assert self.schema_version(reopened) == version
            assert "half_done" not in self.columns(reopened, "agents")
            assert reopened.get_agent("sam") is not None
        finally:
            reopened.close()

    def test_processes_opening_a_fresh_store_at_once_all_succeed(self, open_store: OpenStore) -> None:
        if sys.platform != "linux":
            pytest.skip("forks the test process")
        self.schema_version(None)  # skips for engines without schema versions
        context = multiprocessing.get_context("fork")
        processes = 5
        barrier = context.Barrier(processes)
        errors = context.Queue()

        def open_at_once(index: int) -> None:
            barrier.wait(timeout=60)
            try:
                opened = open_store()
                try:
                    opened.save_agent(AgentRecord(name=f"agent-{index}"))
                finally:
                    opened.close()
            except BaseException:
                errors.put(f"process {index}: {traceback.format_exc(limit=4)}")

        children = [context.Process(target=open_at_once, args=(i,)) for i in range(processes)]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=120)
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        assert not failures, "\n".join(failures)
        assert [child.exitcode for child in children] == [0] * processes
        check = open_store()
        try:
            assert len(check.list_agents()) == processes
        finally:
            check.close()


# A writer that commits steps of 50 messages + 4 passages + the agent row, forever (the kill -9 test).
_WRITER = r"""
import numpy as np
from memgpt.contract.types import Message
from memgpt.storage.base import AgentRecord
while True:
    with store.transaction():
        record = store.get_agent("sam")
        step = int(record.core_memory.get("steps", "0")) + 1
        print("begin", step, flush=True)
        stored = store.add_messages("sam", [Message(role="user", content=f"step {step} message {i}") for i in range(50)])
        store.add_passages("sam", [f"step {step}"] * 4, np.random.rand(4, 16))
        record.in_context = record.in_context + [m.id for m in stored]
        record.core_memory = {"steps": str(step)}
        store.save_agent(record)
    print("commit", step, flush=True)
"""

# What the kill -9 test checks, as JSON: steps, messages, in-context ids, passages, order, torn step's rows.
_REPORT = r"""
import json
record = store.get_agent("sam")
steps = int(record.core_memory.get("steps", "0"))
n = store.count_messages("sam")
recent = store.recent_messages("sam", max(n, 1))
ordered = [m.id for m in recent] == record.in_context
of_torn = sum(1 for m in recent if (m.content or "").startswith("step {torn} message "))
print(json.dumps([steps, n, len(record.in_context), store.count_passages("sam"), ordered, of_torn]))
store.close()
"""


def _kill_inside_a_transaction(code: str, commits: int) -> int:
    """Run the writer; SIGKILL it right after it reports a BEGIN following ``commits`` commits. The step it
    was writing."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen, step = 0, 0
    for line in proc.stdout:
        what, number = line.split()
        step = int(number)
        seen += what == "commit"
        if what == "begin" and seen >= commits:
            time.sleep(0.005)  # inside its 50 inserts
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"the writer exited {proc.returncode} before the kill: {proc.stderr.read() if proc.stderr else ''}")
    return step


__all__ = ["StorageContract", "says", "unit", "user"]
