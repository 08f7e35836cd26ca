"""Fail closed against a server that ignores every constraint field (``tests/dialects/openai_lenient.py``).

The server generates for real (SmolLM2) and answers 200 to any field it does not know, as many
OpenAI-compatible servers do. The probe must find that none of the constraint fields is honoured; then no
constraint is sent, nothing is reported as constrained, the agent is told to parse with repair, and a call
the model writes unconstrained is repaired by the agent's parser as with any unconstrained backend. The same
server, started with an API key, shows the key going from ``memgpt configure --api-key`` to every request.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from memgpt.config import load_config
from memgpt.contract import BackendSettings, CompletionRequest, Constraint
from memgpt.functions.memory import FUNCTIONS
from memgpt.parsing._call import parse_call
from memgpt.session import open_backend
from memgpt.testing.backend import ANSWER_GBNF, ANSWER_SCHEMA, GREEDY
from memgpt_backend_openai.backend import CANDIDATES, OpenAIBackend, forget_servers
from tests.dialects import openai_lenient
from tests.dialects.fixtures import registry_for
from tests.dialects.server import DialectServer

pytestmark = [pytest.mark.model]

FIELDS = ("grammar", "structured_outputs", "response_format", "json_schema")


@pytest.fixture(scope="module")
def lenient(llama: Any) -> Iterator[DialectServer]:
    server = DialectServer(openai_lenient.build(registry_for(llama).engine)).start()
    yield server
    server.stop()


@pytest.fixture
def backend(lenient: DialectServer) -> Iterator[OpenAIBackend]:
    forget_servers()
    lenient.reset()
    yield OpenAIBackend(BackendSettings(endpoint=lenient.url + "/v1", timeout=120.0, context_window=2048))
    forget_servers()


def test_the_probe_finds_no_field_honoured_and_says_so(backend: OpenAIBackend, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="memgpt_backend_openai.backend"):
        assert backend.constraint_fields() == {}
    report = backend.constraint_report()
    print(f"\nlenient server: {report}")
    tried = [name for names in CANDIDATES.values() for name in names]
    assert report.startswith("none honoured") and all(f"{name}: ignored" in report for name in tried)
    assert "honours none of the constraint fields" in caplog.text
    capabilities = backend.capabilities
    assert capabilities.constraints == () and not capabilities.tokenizer and not capabilities.context_probe
    assert backend.context_window() == 2048  # nothing reported: the configured value


def test_a_constrained_request_goes_out_unconstrained_and_is_reported_so(backend: OpenAIBackend, lenient: DialectServer) -> None:
    backend.constraint_fields()
    request = CompletionRequest(
        prompt='Answer with JSON like {"answer": "yes", "confident": true}.\nQuestion: Is the sky blue?\nAnswer: ',
        max_tokens=24,
        sampling=GREEDY,
        constraint=Constraint(gbnf=ANSWER_GBNF, json_schema=ANSWER_SCHEMA),
    )
    completion = backend.complete(request)
    assert completion.constrained_by is None
    sent = lenient.last_request("/v1/completions").json
    assert sent is not None and not [name for name in FIELDS if name in sent], sent


def test_an_unconstrained_call_is_repaired_by_the_agents_parser(backend: OpenAIBackend, lenient: DialectServer) -> None:
    """What an unconstrained model writes (a call in single quotes, then chatter) is repaired, not trusted."""
    backend.constraint_fields()
    schemas = [spec.schema for spec in FUNCTIONS]
    sloppy = "{'function': 'send_message', 'params': {'inner_thoughts': 'Greet.', 'message': 'Hello!'}} Hope that helps!"
    lenient.inject("replace_text", text=sloppy)
    completion = backend.complete(CompletionRequest(prompt="Hi", max_tokens=64, constraint=Constraint(gbnf=ANSWER_GBNF)))
    assert completion.constrained_by is None and completion.text == sloppy
    parsed = parse_call(completion.text, schemas)
    assert parsed.call.name == "send_message" and parsed.call.arguments["message"] == "Hello!"
    assert parsed.repairs, "an unconstrained answer was taken as it came"
    assert json.loads(json.dumps(parsed.call.arguments))["inner_thoughts"] == "Greet."


def test_the_api_key_from_configure_goes_to_every_request(llama: Any) -> None:
    secret = "sk-openai-test-key"
    server = DialectServer(openai_lenient.build(registry_for(llama).engine, api_key=secret)).start()
    try:
        forget_servers()
        args = [sys.executable, "-m", "memgpt", "configure", "--yes", "--backend", "openai"]
        args += ["--model-endpoint", server.url + "/v1", "--api-key", secret]
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert secret not in done.stdout + done.stderr
        backend = open_backend(load_config())
        assert isinstance(backend, OpenAIBackend) and backend.check().ok
        assert backend.complete(CompletionRequest(prompt="Hi", max_tokens=2, sampling=GREEDY)).text
        assert backend.constraint_fields() == {}  # every probe let in: a 401 would have raised, not read as "ignored"
        keyless = OpenAIBackend(BackendSettings(endpoint=server.url, retries=0))
        status = keyless.check()
        assert not status.ok and "API key" in status.detail and "MEMGPT_API_KEY_OPENAI" in status.detail
    finally:
        forget_servers()
        server.stop()
