"""``/v1/chat/completions`` and ``/v1/models`` through the official ``openai`` client package: on the
scripted backend for the protocol, and on real generation (SmolLM2 in process) for one whole turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from test_api import create


def client_for(running: Any, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_chat_completion_is_the_agents_reply(serve: Any) -> None:
    running = serve()
    with running.client() as http:
        create(http, "sam")
    client = client_for(running)
    reply = client.chat.completions.create(
        model="sam",
        messages=[
            {"role": "system", "content": "ignored: the agent's memory is the context"},
            {"role": "user", "content": "an earlier line"},
            {"role": "assistant", "content": "an earlier reply"},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.2,
    )
    assert reply.object == "chat.completion" and reply.model == "sam"
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content == "echo: hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert [m.id for m in client.models.list().data] == ["sam"]
    # only the last user message was the input: the earlier ones were not stored
    with running.client() as http:
        assert http.get("/v1/agents/sam/recall", params={"query": "earlier"}).json()["total"] == 0
        # content given as parts is read too
        parts = http.post(
            "/v1/chat/completions",
            json={"model": "sam", "messages": [{"role": "user", "content": [{"type": "text", "text": "in parts"}]}]},
        )
        assert parts.json()["choices"][0]["message"]["content"] == "echo: in parts"


def test_streamed_chat_completion(serve: Any) -> None:
    running = serve()
    with running.client() as http:
        create(http, "sam")
    chunks = list(
        client_for(running).chat.completions.create(
            model="sam", messages=[{"role": "user", "content": "remember I am Ada"}], stream=True
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.model == "sam" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "noted"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_errors(serve: Any) -> None:
    running = serve(api_key="right-key")
    with running.client(headers={"Authorization": "Bearer right-key"}) as http:
        create(http, "sam")
    with pytest.raises(openai.AuthenticationError):
        client_for(running, "wrong-key").models.list()
    client = client_for(running, "right-key")
    with pytest.raises(openai.NotFoundError, match="no agent"):
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="no user message"):
        client.chat.completions.create(model="sam", messages=[{"role": "system", "content": "hi"}])
    with pytest.raises(openai.InternalServerError, match="retry"):
        client.chat.completions.create(model="sam", messages=[{"role": "user", "content": "fail-once openai"}])
    with pytest.raises(openai.APIError, match="retry"):
        list(client.chat.completions.create(model="sam", messages=[{"role": "user", "content": "fail-once s"}], stream=True))
    assert [m.id for m in client.models.list().data] == ["sam"]


@pytest.mark.model
@pytest.mark.slow
def test_openai_client_on_real_generation(serve: Any, home: Path, smollm2: Path) -> None:
    """SmolLM2-135M in process under the call grammar: the reply is the agent's send_message, stored in recall."""
    (home / "config.toml").write_text(
        f"""version = 1
[model]
backend = "llamacpp-embedded"
model = "{smollm2}"
wrapper = "chatml-grammar"
max_tokens = 256
context_window = 2048
threads = 1
[embedding]
provider = "letters"
""",
        encoding="utf-8",
    )
    running = serve()
    with running.client(timeout=600) as http:
        create(http, "ada")
    client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0, timeout=600)
    reply = client.chat.completions.create(model="ada", messages=[{"role": "user", "content": "Hi! My name is Ada."}])
    text = reply.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert reply.usage is not None and reply.usage.prompt_tokens > 500  # the agent's whole prompt was evaluated
    with running.client(timeout=60) as http:
        said = [
            m["text"]
            for m in http.get("/v1/agents/ada/recall", params={"limit": 50}).json()["messages"]
            if m.get("function") == "send_message" and m["role"] == "assistant"
        ]
    assert text in said or text == "\n\n".join(said[-len(text.split("\n\n")) :])
    streamed = list(
        client.chat.completions.create(
            model="ada", messages=[{"role": "user", "content": "Do you remember my name?"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed).strip()
