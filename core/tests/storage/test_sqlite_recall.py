"""Recall memory: messages stored and read back, full-text search over the conversation, date ranges."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt.errors import StorageError
from memgpt.llm.types import FunctionCall, Message
from memgpt.storage.sqlite import SQLiteStorage

from .conftest import says, user


def test_messages_round_trip_with_ids_in_order(store: SQLiteStorage) -> None:
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
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids)
    assert [m.model_copy(update={"id": None}) for m in stored] == sent
    assert store.get_messages("sam", [ids[2], ids[0]]) == [stored[2], stored[0]]
    assert store.count_messages("sam") == 4
    assert store.recent_messages("sam", 2) == stored[2:]
    assert store.recent_messages("sam", 0) == []


def test_unknown_message_ids_are_an_error_not_a_silent_gap(store: SQLiteStorage) -> None:
    [stored] = store.add_messages("sam", [user("one")])
    with pytest.raises(StorageError, match="no messages with ids \\[999\\]"):
        store.get_messages("sam", [stored.id, 999])  # type: ignore[list-item]


def test_already_stored_messages_are_refused(store: SQLiteStorage) -> None:
    [stored] = store.add_messages("sam", [user("once")])
    with pytest.raises(StorageError, match="already stored"):
        store.add_messages("sam", [stored])
    assert store.count_messages("sam") == 1


def test_search_finds_user_text_and_what_the_assistant_said(store: SQLiteStorage) -> None:
    store.add_messages(
        "sam",
        [
            user("I really like pizza with olives"),
            says("Pizza with olives sounds great!", thoughts="the user talks about food"),
            user("what is the weather"),
            says("It is sunny.", thoughts="pizza pizza pizza"),  # inner thoughts are not conversation
        ],
    )
    found, total = store.search_messages("sam", "pizza")
    assert total == 2
    assert {m.role for m in found} == {"user", "assistant"}  # MemGPT never found assistant turns


def test_search_matches_text_not_the_json_around_it(store: SQLiteStorage) -> None:
    store.add_messages("sam", [user("hello there"), says("hi!")])
    store.add_messages("sam", [Message(role="user", content=json.dumps({"type": "heartbeat", "reason": "pizza time"}))])
    store.add_messages("sam", [Message(role="function", name="send_message", content='{"status": "OK", "message": "pizza"}')])
    for key in ("type", "message", "user_message", "time", "inner_thoughts", "send_message"):
        assert store.search_messages("sam", key) == ([], 0), key
    assert store.search_messages("sam", "pizza") == ([], 0)  # heartbeats and function results are not conversation


def test_search_stems_and_falls_back_to_any_word_then_prefixes(store: SQLiteStorage) -> None:
    store.add_messages("sam", [user("My dogs love running"), user("cats sleep"), user("the weather is cold")])
    found, total = store.search_messages("sam", "dog running")
    assert total == 1 and "dogs" in (found[0].content or "")
    found, total = store.search_messages("sam", "do my cats like dogs?")  # no message has every word
    assert total == 2
    assert [m.content for m in store.search_messages("sam", "weath")[0]] == [user("the weather is cold").content]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'pizza"',
        "NOT",
        "pizza AND",
        "OR OR",
        "(",
        "col:pizza",
        "pizza*",
        "^pizza",
        "NEAR(a b)",
        "-pizza",
        "''",
        "%",
        "_",
        "\\",
    ],
)
def test_fts_syntax_in_queries_is_just_text(store: SQLiteStorage, query: str) -> None:
    store.add_messages("sam", [user("pizza is great"), user("100% sure_thing")])
    found, total = store.search_messages("sam", query)
    assert total == len(found)


def test_punctuation_queries_fall_back_to_substring(store: SQLiteStorage) -> None:
    store.add_messages("sam", [user("is it 100% sure?"), user("nope")])
    found, total = store.search_messages("sam", "%")
    assert total == 1 and "100%" in (found[0].content or "")
    assert store.search_messages("sam", "   ") == ([], 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40))
def test_any_text_is_a_valid_query(store: SQLiteStorage, query: str) -> None:
    if store.count_messages("sam") == 0:
        store.add_messages("sam", [user("some words here"), says("more words")])
    found, total = store.search_messages("sam", query, limit=5)
    assert 0 <= len(found) <= min(5, total)


def test_search_is_paged_with_a_total(store: SQLiteStorage) -> None:
    store.add_messages("sam", [user(f"note {i} about apples") for i in range(12)])
    pages = [store.search_messages("sam", "apples", limit=5, offset=o) for o in (0, 5, 10, 15)]
    assert [len(p[0]) for p in pages] == [5, 5, 2, 0]
    assert {p[1] for p in pages} == {12}
    assert len({m.id for p in pages for m in p[0]}) == 12
    with pytest.raises(StorageError, match="offset"):
        store.search_messages("sam", "apples", offset=-1)


def test_search_is_per_agent(store: SQLiteStorage) -> None:
    from memgpt.storage.base import AgentRecord

    store.save_agent(AgentRecord(name="other"))
    store.add_messages("other", [user("secret pizza")])
    assert store.search_messages("sam", "pizza") == ([], 0)


def test_date_range_includes_both_end_dates(store: SQLiteStorage) -> None:
    day = lambda d, h=12: datetime(2024, 5, d, h, tzinfo=UTC)  # noqa: E731
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
    assert [m.created_at.day for m in found] == [1, 2, 3]  # oldest first; the end date is included
    # a single day, and a reversed range means the same days
    assert store.messages_between("sam", date(2024, 5, 3), date(2024, 5, 3))[1] == 1
    assert store.messages_between("sam", date(2024, 5, 3), date(2024, 5, 1))[1] == 3
    # paging
    page, total = store.messages_between("sam", date(2024, 4, 1), date(2024, 6, 1), limit=2, offset=4)
    assert total == 5 and [m.created_at.day for m in page] == [4]


def test_date_range_in_another_timezone(store: SQLiteStorage) -> None:
    # 2024-05-02 01:00 UTC is still May 1st in New York (UTC-4)
    store.add_messages("sam", [user("late evening", at=datetime(2024, 5, 2, 1, 0, tzinfo=UTC))])
    new_york = timezone(timedelta(hours=-4))
    assert store.messages_between("sam", date(2024, 5, 1), date(2024, 5, 1), tz=new_york)[1] == 1
    assert store.messages_between("sam", date(2024, 5, 1), date(2024, 5, 1))[1] == 0
