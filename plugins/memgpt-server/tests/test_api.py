"""The agent API over real HTTP (httpx against uvicorn), on the scripted backend."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx


def create(client: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/agents", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def error_of(response: httpx.Response) -> str:
    body = response.json()
    message = body["error"]["message"]
    assert isinstance(message, str) and "\n" not in message and "Traceback" not in message
    return message


def sse_events(response: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_agents_create_list_show_delete(serve: Any) -> None:
    with serve().client() as client:
        made = create(client, "sam", persona="sam_pov", model={"max_tokens": 512})
        assert made["name"] == "sam" and made["persona"] == "sam_pov" and made["model"]["max_tokens"] == 512
        assert made["model"]["backend"] == "scripted-server" and made["open"] is True and made["pending"] == []
        assert [a["name"] for a in client.get("/v1/agents").json()["agents"]] == ["sam"]
        assert client.get("/v1/agents/sam").json()["messages"] == 0

        again = client.post("/v1/agents", json={"name": "sam"})
        assert again.status_code == 409 and "exists already" in error_of(again)
        unknown = client.post("/v1/agents", json={"name": "x1", "persona": "no_such_persona"})
        assert unknown.status_code == 400 and "no_such_persona" in error_of(unknown)
        assert client.get("/v1/agents/x1").status_code == 404  # nothing was saved for the refused one

        assert client.delete("/v1/agents/sam").json() == {"deleted": "sam"}
        missing = client.get("/v1/agents/sam")
        assert missing.status_code == 404 and error_of(missing) == "no agent named 'sam'"
        assert client.delete("/v1/agents/sam").status_code == 404


def test_bad_names_and_bodies_get_one_line_errors(serve: Any) -> None:
    with serve().client() as client:
        for bad in ("a b", "-x", "x" * 65, "..", "é"):
            response = client.post("/v1/agents", json={"name": bad})
            assert response.status_code in (400, 422), (bad, response.text)
            error_of(response)
        assert client.get("/v1/agents/a%20b").status_code == 400
        assert client.post("/v1/agents/a%2Fb/messages", json={"message": "hi"}).status_code in (400, 404)
        create(client, "sam")
        for body in ({}, {"message": ""}, {"message": "x" * 16_001}, {"message": "hi", "extra": 1}):
            response = client.post("/v1/agents/sam/messages", json=body)
            assert response.status_code == 422, body
            assert error_of(response).startswith("invalid request: ")
        not_json = client.post("/v1/agents/sam/messages", content=b"{nope", headers={"content-type": "application/json"})
        assert not_json.status_code == 422
        error_of(not_json)


def test_a_message_returns_the_turns_events_and_is_stored(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        body = client.post("/v1/agents/sam/messages", json={"message": "remember I like tea"}).json()
        kinds = [e["type"] for e in body["events"]]
        assert kinds == ["thought", "call", "result", "thought", "assistant", "result"]
        assert body["events"][1]["function"] == "core_memory_append"
        assert body["replies"] == ["noted"] and body["turn"]["answered"] is True and body["turn"]["steps"] == 2
        assert body["turn"]["usage"]["prompt_tokens"] > 0
        assert "I like tea" in client.get("/v1/agents/sam/memory").json()["blocks"]["human"]
        found = client.get("/v1/agents/sam/recall", params={"query": "tea"}).json()
        assert found["total"] == 1 and found["messages"][0]["text"] == "remember I like tea"
        today = time.strftime("%Y-%m-%d")
        by_date = client.get("/v1/agents/sam/recall", params={"start": today, "end": today}).json()
        assert by_date["total"] == 2  # the user's message and the reply
        latest = client.get("/v1/agents/sam/recall", params={"limit": 3}).json()
        assert latest["messages"][-1]["role"] == "function" and len(latest["messages"]) == 3
        assert client.get("/v1/agents/sam").json()["pending"] == []


def test_stream_sends_each_event_as_it_happens(serve: Any) -> None:
    running = serve()
    with running.client() as client:
        create(client, "sam")
        arrivals: list[tuple[bool, Any]] = []  # (was the turn still running when the event arrived?, event)
        with client.stream("POST", "/v1/agents/sam/messages", json={"message": "then-slow:1.5 likes jazz", "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    arrivals.append((running.host.busy("sam"), data if data == "[DONE]" else json.loads(data)))
        events = [e for _, e in arrivals]
        assert events[-1] == "[DONE]" and events[-2]["type"] == "turn" and events[-2]["answered"] is True
        # the first step's call arrived while the turn was still running (its second step still generating),
        # not with the whole turn at its end
        call_running = next(busy for busy, e in arrivals if isinstance(e, dict) and e["type"] == "call")
        assert call_running, arrivals


def test_core_memory_edit(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        edited = client.put("/v1/agents/sam/memory/human", json={"text": "Name: Ada"})
        assert edited.status_code == 200 and edited.json()["blocks"]["human"] == "Name: Ada"
        assert client.get("/v1/agents/sam/memory").json()["blocks"]["human"] == "Name: Ada"
        too_long = client.put("/v1/agents/sam/memory/human", json={"text": "x" * 2001})
        assert too_long.status_code == 422 and "limit" in error_of(too_long)
        unknown = client.put("/v1/agents/sam/memory/diary", json={"text": "x"})
        assert unknown.status_code == 404 and "persona" in error_of(unknown)
        assert client.get("/v1/agents/sam/memory").json()["blocks"]["human"] == "Name: Ada"
        # the agent's next step shows the edit at the top of its prompt
        client.post("/v1/agents/sam/messages", json={"message": "hello"})
        recalled = client.get("/v1/agents/sam").json()
        assert recalled["core_memory"]["human"] == len("Name: Ada")


def test_archival_insert_and_search(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        for text in ("the cat is called Tom", "quarterly budget review in March"):
            made = client.post("/v1/agents/sam/archival", json={"text": text})
            assert made.status_code == 201 and made.json()["passages"] == 1
        found = client.get("/v1/agents/sam/archival", params={"query": "cat Tom"}).json()
        assert found["total"] == 2 and found["passages"][0]["text"] == "the cat is called Tom"
        assert client.get("/v1/agents/sam").json()["passages"] == 2
        assert client.get("/v1/agents/sam/archival", params={"query": ""}).status_code == 422


def test_a_failed_turn_keeps_the_message_pending_and_retry_answers_it(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        failed = client.post("/v1/agents/sam/messages", json={"message": "fail-once please"})
        assert failed.status_code == 502
        body = failed.json()
        assert body["pending"] == ["fail-once please"] and "retry" in body["error"]["message"]
        assert client.get("/v1/agents/sam/pending").json() == {"pending": ["fail-once please"]}
        with client.stream("POST", "/v1/agents/sam/retry", json={"stream": True}) as r:
            events = sse_events(r)
        assert next(e for e in events if isinstance(e, dict) and e["type"] == "assistant")["text"] == "echo: fail-once please"
        assert client.get("/v1/agents/sam/pending").json() == {"pending": []}
        nothing = client.post("/v1/agents/sam/retry")
        assert nothing.status_code == 409 and "no pending message" in error_of(nothing)
        # stored once: the user's message, the reply and its result
        assert client.get("/v1/agents/sam/recall", params={"query": "please"}).json()["total"] == 2


def test_a_failed_streamed_turn_ends_with_an_error_event(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        with client.stream("POST", "/v1/agents/sam/messages", json={"message": "fail-once streamed", "stream": True}) as r:
            events = sse_events(r)
        assert events[-1] == "[DONE]" and events[-2]["type"] == "error" and events[-2]["status"] == 502
        assert events[-2]["pending"] == ["fail-once streamed"]


def test_openapi_schema_lists_the_endpoints(serve: Any) -> None:
    with serve().client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/agents",
        "/v1/agents/{name}",
        "/v1/agents/{name}/messages",
        "/v1/agents/{name}/memory/{block}",
        "/v1/agents/{name}/recall",
        "/v1/agents/{name}/archival",
        "/v1/agents/{name}/retry",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in paths, path


def test_a_document_loads_into_archival_memory_with_progress(serve: Any, home: Any) -> None:
    paragraphs = [f"Paragraph {i} is about {'gardening tomatoes' if i == 7 else 'something else entirely'}." for i in range(40)]
    document = "\n\n".join(p * 6 for p in paragraphs).encode("utf-8")
    with serve(max_upload=200_000).client() as client:
        create(client, "sam")
        before = sorted(p.name for p in home.rglob("*"))
        with client.stream(
            "POST",
            "/v1/agents/sam/documents",
            params={"source": "../../etc/notes.md", "stream": "true"},
            content=document,
            headers={"content-type": "text/markdown"},
        ) as r:
            events = sse_events(r)
        assert events[-1] == "[DONE]" and events[-2]["type"] == "loaded" and events[-2]["source"] == "notes.md"
        total = events[-2]["passages"]
        progress = [e for e in events if isinstance(e, dict) and e["type"] == "progress"]
        assert total > 1 and progress[0] == {"type": "progress", "done": 0, "total": total}
        assert progress[-1]["done"] == total and [p["done"] for p in progress] == sorted(p["done"] for p in progress)
        assert client.get("/v1/agents/sam").json()["passages"] == total
        found = client.get("/v1/agents/sam/archival", params={"query": "gardening tomatoes", "limit": 1}).json()
        assert "gardening tomatoes" in found["passages"][0]["text"]

        plain = client.post("/v1/agents/sam/documents", content=b"one short note")
        assert plain.status_code == 201 and plain.json() == {"type": "loaded", "source": "upload", "passages": 1}
        binary = client.post("/v1/agents/sam/documents", content=b"\x7fELF\x00\x00\x01")
        assert binary.status_code == 415 and "binary" in error_of(binary)
        latin = client.post("/v1/agents/sam/documents", content="café".encode("latin-1"))
        assert latin.status_code == 400 and "not UTF-8" in error_of(latin)
        too_big = client.post("/v1/agents/sam/documents", content=b"x" * 200_001)
        assert too_big.status_code == 413
        assert client.post("/v1/agents/nobody/documents", content=b"text").status_code == 404
    # no file appeared but the database's own: the source name was a label, never a path
    after = sorted(p.name for p in home.rglob("*"))
    assert [n for n in after if n not in before and not n.startswith("memgpt.db")] == []


def test_a_message_that_could_not_be_stored_is_not_called_kept(serve: Any) -> None:
    from memgpt.errors import StorageError

    running = serve()
    with running.client() as client:
        create(client, "sam")
        agent = running.host._slots["sam"].session.agent

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise StorageError("database is locked")

        agent._set_pending = refuse
        response = client.post("/v1/agents/sam/messages", json={"message": "hello"})
        assert response.status_code == 500 and response.json()["pending"] == []
        assert error_of(response) == "database is locked (the message was not stored: send it again)"
        del agent._set_pending
        kept = client.post("/v1/agents/sam/messages", json={"message": "fail-once kept"})
        assert kept.status_code == 502 and "the message is kept: POST /v1/agents/sam/retry" in error_of(kept)


def test_a_turn_that_failed_after_its_first_step_says_the_message_was_taken(serve: Any) -> None:
    with serve().client() as client:
        create(client, "sam")
        response = client.post("/v1/agents/sam/messages", json={"message": "fail-after likes chess"})
        assert response.status_code == 502 and response.json()["pending"] == []
        assert "the message was taken: the steps before the failure are stored" in error_of(response)
        assert [e["type"] for e in response.json()["events"]][:3] == ["thought", "call", "result"]
        assert "likes chess" in client.get("/v1/agents/sam/memory").json()["blocks"]["human"]
