"""Reasoning wrappers on real generation: SmolLM2-135M, which does not think by nature, made to write a bounded
think block before each call (the ``think? call`` grammar in process and on llama-server; the two-request
fallback on a server that takes only JSON schema). What must hold: every call valid, the thinking kept with
the call in recall (and in inner_thoughts when the call has none), never replayed into a later prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memgpt.agent.agent import Limits
from memgpt.config import Config, ModelSettings
from memgpt.parsing._call import split_thinking
from memgpt.session import AgentOptions, open_session
from tests.servers import RealServer, free_port, serve

pytestmark = [pytest.mark.model, pytest.mark.slow]

MAX_TOKENS = 256  # leaves the thinking a third of the turn (the call needs the rest)
LINES = ("Hi! My name is Ada.", "I have a cat called Miso.")


def spy(agent: Any) -> list[tuple[Any, Any]]:
    """Every (request, completion) the agent's backend serves, in order."""
    seen: list[tuple[Any, Any]] = []
    complete = agent.backend.complete

    def recording(request: Any) -> Any:
        completion = complete(request)
        seen.append((request, completion))
        return completion

    agent.backend.complete = recording
    return seen


def converse(config: Config, name: str, lines: tuple[str, ...] = LINES, **limits: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    session = open_session(config, AgentOptions(name=name))
    agent = session.agent
    agent.limits = Limits(**{"max_tokens": MAX_TOKENS, "max_chain": 1, "parse_retries": 1, "reply_step": False, **limits})
    assert agent._shape().max_think_chars > 0, "the turn budget leaves no room to think"
    seen = spy(agent)
    errors = []
    for line in lines:
        result = agent.send(line)
        errors += [e.text for e in result.events if e.kind == "error"]
    assert errors == []
    return agent, seen


def check_thinking_kept_not_replayed(agent: Any, prompts: list[str], outputs: list[str]) -> int:
    """Every turn's thinking is stored with its call, bounded, and absent from every later prompt; returns how
    many turns thought (wrote a non-empty block)."""
    shape = agent._shape()
    stored = [m for m in agent.storage.recent_messages(agent.name, 1000) if m.role == "assistant"]
    assert stored and all(m.function_call is not None for m in stored)
    thought = 0
    for i, output in enumerate(outputs):
        split = split_thinking(output, agent.wrapper.call_shape)
        assert split is not None and split[2], f"no closed think block in {output!r}"
        thinking = split[0]
        assert len(thinking) <= shape.max_think_chars
        if not thinking:
            continue
        thought += 1
        match = [m for m in stored if m.content == thinking]
        assert match, f"thinking {thinking!r} is not in recall"
        call = match[0].function_call
        assert call.inner_thoughts  # the call's own, or the thinking where it had none
        for later in prompts[i + 1 :]:
            assert thinking + shape.think_close not in later, "the thinking was replayed into a later prompt"
    return thought


def test_in_process_under_the_think_call_grammar(smollm2: Path) -> None:
    config = Config(
        model=ModelSettings(backend="llamacpp-embedded", model=str(smollm2), wrapper="deepseek-r1-grammar", max_tokens=MAX_TOKENS)
    )
    agent, seen = converse(config, "r1-embedded")
    assert agent.wrapper.call_shape.thinks and not agent.wrapper.call_shape.think_open
    assert all(r.constraint is not None and r.constraint.gbnf and "think" in r.constraint.gbnf for r, _ in seen)
    assert check_thinking_kept_not_replayed(agent, [r.prompt for r, _ in seen], [c.text for _, c in seen]) >= 1


@pytest.fixture(scope="module")
def llama_server(
    llama_server_binary: Path, smollm2: Path, threads: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealServer]:
    port = free_port()
    command = [str(llama_server_binary), "-m", str(smollm2), "--host", "127.0.0.1", "--port", str(port)]
    command += ["-t", str(threads), "-tb", str(threads), "-c", "4096", "-np", "1", "--no-webui"]
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    yield from serve("llama-server", command, port=port, model="smollm2", ready_path="/health", log=log, seconds=120)


def test_llama_server_under_the_think_call_grammar(llama_server: RealServer) -> None:
    config = Config(
        model=ModelSettings(backend="llamacpp", endpoint=llama_server.url, wrapper="qwen3-grammar", max_tokens=MAX_TOKENS)
    )
    agent, seen = converse(config, "qwen3-server", LINES[:1])
    assert agent.wrapper.call_shape.think_open == "<think>\n"
    assert all(c.constrained_by == "gbnf" for _, c in seen)
    # The block is optional for qwen3 (think? call): whatever the model chose, each turn reads back.
    outputs = [c.text for _, c in seen]
    thinking = [o for o in outputs if o.startswith("<think>")]
    if thinking:
        check_thinking_kept_not_replayed(agent, [r.prompt for r, _ in seen], thinking)


def test_a_json_schema_only_server_thinks_first_then_gets_the_schema(dialect_server: Any) -> None:
    server = dialect_server("lmstudio")
    config = Config(
        model=ModelSettings(
            backend="lmstudio", endpoint=server.url, wrapper="qwen3-grammar", max_tokens=MAX_TOKENS, context_window=4096
        )
    )
    # The dialect server's JSON-schema enforcement let pause_heartbeats(minutes=1200) through (maximum 360):
    # the agent refuses such a call and asks again, so a low temperature and two re-asks.
    agent, seen = converse(config, "qwen3-lmstudio", LINES[:1], temperature=0.2, parse_retries=2)
    shape = agent._shape()
    assert agent.backend.capabilities.constraints == ("json_schema",)
    assert len(seen) >= 2 and len(seen) % 2 == 0
    outputs = []
    for (free, _), (constrained, call) in zip(seen[::2], seen[1::2], strict=True):
        # First: the thinking, unconstrained, stopped at the closing tag, bounded.
        assert free.constraint is None and "</think>" in free.stop and free.max_tokens == shape.max_think_chars
        assert free.prompt.endswith("<|im_start|>assistant\n<think>\n")
        # Then: the same prompt continued with the closed block, under the schema.
        assert constrained.constraint is not None and constrained.constraint.json_schema and not constrained.constraint.gbnf
        assert constrained.prompt.startswith(free.prompt) and constrained.prompt.endswith(shape.think_close)
        assert call.constrained_by == "json_schema"
        outputs.append(constrained.prompt[len(free.prompt) - len(shape.think_open) :] + call.text)
    prompts = [r.prompt for r, _ in seen[1::2]]
    assert check_thinking_kept_not_replayed(agent, prompts, outputs) >= 1
