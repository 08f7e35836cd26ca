"""The event format the model reads is built and read back in one module (memgpt.agent.events)."""

from __future__ import annotations

from datetime import UTC, datetime

from memgpt.agent import events

AT = datetime(2024, 5, 17, 10, 0, 0, tzinfo=UTC)


def test_each_builder_reads_back_as_its_event() -> None:
    said = events.parse(events.user_message("héllo", moment=AT))
    assert said is not None and (said.kind, said.text, said.time) == ("user_message", "héllo", "2024-05-17 10:00:00 AM UTC+0000")
    login = events.parse(events.login(moment=AT))
    assert login is not None and login.kind == "login" and login.text is None
    assert login.fields["last_login"] == "Never (first login)"
    beat = events.parse(events.heartbeat(events.HEARTBEAT_REQUESTED, moment=AT))
    assert beat is not None and (beat.kind, beat.text) == ("heartbeat", events.HEARTBEAT_REQUESTED)
    alert = events.parse(events.system_alert("careful"))
    assert alert is not None and (alert.kind, alert.text) == ("system_alert", "careful")
    result = events.parse(events.function_result("Failed", {"n": 1}))
    assert result is not None and (result.kind, result.status, result.text) == ("function_result", "Failed", '{"n": 1}')


def test_a_long_function_result_is_cut() -> None:
    result = events.parse(events.function_result("OK", "x" * (events.MAX_RESULT_CHARS + 10)))
    assert result is not None and result.text is not None
    assert result.text.startswith("x" * events.MAX_RESULT_CHARS) and result.text.endswith("[cut at 3000 characters]")


def test_what_is_not_an_event_is_none() -> None:
    for content in (None, "", "plain words", "[1, 2]", '{"type": "unknown"}', '{"no": "event"}', "{broken"):
        assert events.parse(content) is None, content


def test_the_readers_take_what_each_caller_needs() -> None:
    user, beat = events.user_message("hi there"), events.heartbeat("timed heartbeat")
    assert events.user_text(user) == "hi there" and events.user_text(beat) is None and events.user_text("hi") is None
    assert events.shown_text(events.system_alert("note")) == "note"
    assert events.shown_text(events.function_result("OK", "done")) == "done"
    assert events.shown_text(beat) == beat and events.shown_text("plain") == "plain"  # nothing to show but itself
    assert events.spoken_text(user) == "hi there" and events.spoken_text(" plain ") == "plain"
    assert events.spoken_text(beat) is None and events.spoken_text(events.login()) is None and events.spoken_text(" ") is None
