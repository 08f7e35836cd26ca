"""End to end on real generation: SmolLM2-135M in process (llama.cpp) under the call grammar, the real
chatml-grammar wrapper, real SQLite and the memory functions. The tiny model's *content* is nonsense;
what is tested is that every turn is a valid call and the agent's machinery holds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memgpt.agent import events
from memgpt.agent.agent import Limits
from memgpt.config import Config, ModelSettings
from memgpt.parsing._call import parse_call
from memgpt.session import AgentOptions, open_session

pytestmark = [pytest.mark.model, pytest.mark.slow]

USER_LINES = [
    "Hi! My name is Ada.",
    "I live in Oslo and I work as a nurse.",
    "Do you remember my name?",
    "I have a cat called Miso.",
    "What's your favourite season?",
    "Please remember that my birthday is March 3.",
    "Tell me a short joke.",
    "What do you know about me so far?",
    "I like hiking on weekends.",
    "Can you search our conversation for 'cat'?",
]


# A turn budget for which the agent can bound every string so that any call the grammar admits
# fits (shape_for_budget); below it a call can be cut off and re-asked, which these tests do not measure.
MAX_TOKENS = 256


def config(smollm2: Path, **model: object) -> Config:
    return Config(
        model=ModelSettings(
            backend="llamacpp-embedded", model=str(smollm2), wrapper="chatml-grammar", max_tokens=MAX_TOKENS, **model
        )
    )


def bounded_limits(agent, max_chain: int) -> Limits:  # type: ignore[no-untyped-def]
    """The test's limits, after checking that the agent's call grammar really guarantees a complete call."""
    assert agent._shape().max_string_chars < agent.wrapper.call_shape.max_string_chars, "strings were not bounded"
    return Limits(max_tokens=MAX_TOKENS, max_chain=max_chain, parse_retries=2)


def validate_stored_calls(session) -> int:  # type: ignore[no-untyped-def]
    agent = session.agent
    calls = [
        m.function_call for m in agent.storage.recent_messages(agent.name, 10_000) if m.role == "assistant" and m.function_call
    ]
    for call in calls:
        text = json.dumps({"function": call.name, "params": call.arguments})
        assert parse_call(text, agent.schemas).call == call
    return len(calls)


def test_ten_turns_under_the_grammar(smollm2: Path) -> None:
    session = open_session(config(smollm2, context_window=4096), AgentOptions(name="e2e"))
    try:
        agent = session.agent
        agent.limits = bounded_limits(agent, max_chain=2)
        errors = []
        usage = 0
        # each user line once proves the machinery turn after turn; the validity rate over many turns is
        # bench/bench_grammar.py's figure
        for line in USER_LINES:
            result = agent.send(line)
            errors += [e.text for e in result.events if e.kind == "error"]
            usage += sum(u.completion_tokens for u in result.usage)
        assert errors == []
        assert usage > 0
        assert validate_stored_calls(session) >= len(USER_LINES)
    finally:
        session.close()


def test_a_tiny_window_summarizes_and_the_conversation_continues(smollm2: Path) -> None:
    session = open_session(config(smollm2, context_window=2048), AgentOptions(name="tiny"))
    try:
        agent = session.agent
        agent.limits = bounded_limits(agent, max_chain=1)
        summarized = False
        for i in range(40):
            result = agent.send(USER_LINES[i % len(USER_LINES)] + " " + "Tell me more about that. " * 4)
            summarized |= any(e.kind == "alert" and "summarized" in e.text for e in result.events)
            if summarized and i >= 2:
                break
        assert summarized, "the summarizer never ran"
        after = agent.send("Are you still there?")
        assert [e for e in after.events if e.kind == "error"] == []
        first = agent.context_messages()[0]
        assert "moved out of your context window" in events.read(first.content)["message"]
        assert agent.storage.count_messages(agent.name) > len(agent.context_messages())
        validate_stored_calls(session)
    finally:
        session.close()


def test_memgpt_run_three_turns_on_the_default_model(tmp_path: Path) -> None:
    """The Quickstart's `memgpt run` with nothing configured: the default is the in-process backend with
    the SmolLM2 model from PyPI and the chatml-grammar wrapper."""
    env = {**os.environ, "MEMGPT_THREADS": os.environ.get("MEMGPT_THREADS", "1")}
    args = [sys.executable, "-m", "memgpt", "run", "--agent", "quick", "--first"]
    for text in ("Hello there", "My name is Bo", "What is my name?"):
        args += ["--message", text]
    out = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    session = lines[0]
    assert session["type"] == "session" and session["backend"] == "llamacpp-embedded" and session["wrapper"] == "chatml-grammar"
    turns = [line for line in lines if line["type"] == "turn"]
    assert len(turns) == 3
    assert all(t["usage"]["completion_tokens"] > 0 and t["usage"]["prompt_tokens"] > 0 for t in turns)
    assert not [line for line in lines if line["type"] == "error"]
    # resuming shows the history is there
    again = subprocess.run([sys.executable, "-m", "memgpt", "list", "agents", "--json"], capture_output=True, text=True, env=env)
    (agent,) = json.loads(again.stdout)
    assert agent["name"] == "quick" and agent["messages"] >= 9
