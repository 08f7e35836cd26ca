"""A backend that answers from a script: drives the agent loop through chosen outputs in tests and in
the framework-overhead benchmark (where a real model's time would hide the loop's own cost).

Each script entry is the text to return, or a ``BackendError`` instance to raise. Token counts are an
estimate (characters / 4), declared as such through ``Capabilities.tokenizer = False``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from memgpt.contract.backend import Backend, Capabilities
from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, Usage
from memgpt.errors import BackendError, BackendProtocolError


def call(function: str, inner_thoughts: str = "thinking", **params: Any) -> str:
    """The JSON text of one call in the MemGPT shape."""
    return json.dumps({"function": function, "params": {"inner_thoughts": inner_thoughts, **params}}, ensure_ascii=False)


class ScriptedBackend(Backend):
    name = "scripted"
    capabilities = Capabilities(constraints=("gbnf", "json_schema"), tokenizer=False, context_probe=False)

    def __init__(self, script: Iterable[str | BaseException] = (), *, context_window: int | None = None) -> None:
        self.script: list[str | BaseException] = list(script)
        self.requests: list[CompletionRequest] = []
        self.window = context_window

    def add(self, *entries: str | BaseException) -> None:
        self.script.extend(entries)

    def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if not self.script:
            raise BackendProtocolError("scripted backend: the script is exhausted", endpoint="script")
        entry = self.script.pop(0)
        if isinstance(entry, BaseException):
            raise entry
        prompt_tokens = self.count_tokens(request.prompt)
        usage = Usage(
            prompt_tokens=prompt_tokens, completion_tokens=self.count_tokens(entry), evaluated_tokens=prompt_tokens, exact=False
        )
        return Completion(text=entry, usage=usage, constrained_by="gbnf" if request.constraint is not None else None)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def check(self) -> BackendStatus:
        return BackendStatus(ok=True, model="script", context_window=self.window)

    def context_window(self) -> int | None:
        return self.window


class LetterEmbedder:
    """Bag-of-letters embedding: deterministic and cheap, for loop tests and benchmarks that only need
    *an* embedder (semantic search with the real model is tested with MiniLM)."""

    dimensions = 26

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        rows = np.zeros((len(texts), 26), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    rows[i, ord(ch) - 97] += 1
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1, norms)


def chat_agent(
    record: Any,
    storage: Any,
    backend: Backend,
    *,
    cls: Any = None,
    wrapper: str = "chatml-grammar",
    functions: Any = None,
    embedder: Any = LetterEmbedder,
    context_window: int = 8192,
    limits: Any = None,
) -> Any:
    """An agent on the default preset (``memgpt_chat``: its system prompt, the builtin memory functions
    and the call grammar), for tests and benchmarks that drive the loop with a backend of their own.
    ``cls`` is ``memgpt.agent.Agent`` or a subclass."""
    from memgpt.agent.agent import Agent, Limits
    from memgpt.functions.memory import FUNCTIONS
    from memgpt.plugins import get_registry
    from memgpt.session import load_preset, open_wrapper

    return (cls or Agent)(
        record,
        storage=storage,
        backend=backend,
        wrapper=open_wrapper(wrapper),
        system_prompt=load_preset("memgpt_chat").system,
        functions=FUNCTIONS if functions is None else functions,
        build_constraint=get_registry().grammar("call").build,
        embedder=embedder,
        context_window=context_window,
        limits=limits or Limits(),
    )


def first_request(
    directory: Any, message: str, *, persona: str = "sam_pov", human: str = "basic", limits: Any = None
) -> CompletionRequest:
    """The request a new agent on the default preset sends for its first user ``message`` (prompt, stop
    strings, sampling, call grammar), captured with a scripted backend; its SQLite file lives in ``directory``."""
    from pathlib import Path

    from memgpt import catalog
    from memgpt.memory.core import CoreMemory
    from memgpt.storage.base import AgentRecord
    from memgpt.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(Path(directory) / "memgpt.db")
    try:
        core = CoreMemory.from_dict({"persona": catalog.read("personas", persona), "human": catalog.read("humans", human)})
        record = AgentRecord(name="first", settings={"preset": "memgpt_chat"}, core_memory=core.to_dict())
        storage.save_agent(record)
        backend = ScriptedBackend([call("send_message", "greet", message="Hello!")])
        chat_agent(record, storage, backend, limits=limits).send(message)
    finally:
        storage.close()
    return backend.requests[0]


__all__ = ["BackendError", "LetterEmbedder", "ScriptedBackend", "call", "chat_agent", "first_request"]
