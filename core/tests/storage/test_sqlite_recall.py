"""Recall memory: messages stored and read back, full-text search over the conversation, date ranges."""

from __future__ import annotations

import pytest

from memgpt.storage.sqlite import SQLiteStorage

from .conftest import user


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
