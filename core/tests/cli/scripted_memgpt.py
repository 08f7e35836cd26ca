"""``memgpt`` with two more backends, registered through the real plugin path, for CLI tests that run the
console script in a subprocess or a pty without a model:

- ``scripted``: answers every turn at once with ``send_message("reply N")``; reports an 8192-token window.
- ``broken``: its factory raises, like a plugin with a bug.
- ``slow``: like ``scripted``, but each completion first sleeps ``MEMGPT_TEST_SLOW`` seconds (default 3),
  as a model on a laptop CPU does (for the terminal's progress display and Ctrl-C mid-turn).
- the ``words`` embedder: bag-of-letters vectors of texts it reads up to 40 words of (counted by
  whitespace); loading it takes ``MEMGPT_TEST_EMBED_LOAD`` seconds and each batch
  ``MEMGPT_TEST_EMBED_SLOW`` seconds (default 0), for ``memgpt load`` without a real model.

Run it exactly like the console script: ``python scripted_memgpt.py run --agent sam``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from memgpt import hookimpl, plugins
from memgpt.contract.backend import BackendSpec, Capabilities
from memgpt.contract.types import Completion, CompletionRequest
from memgpt.embeddings.spec import EmbedderSpec
from memgpt.testing.scripted import LetterEmbedder, ScriptedBackend, call

WINDOW = 8192


class Replies(ScriptedBackend):
    """Every completion is the next reply; the user's words are not needed to test the terminal."""

    name = "scripted"
    capabilities = Capabilities(constraints=("gbnf", "json_schema"), tokenizer=False, context_probe=True)

    def complete(self, request: CompletionRequest) -> Completion:
        self.add(call("send_message", message=f"reply {len(self.requests) + 1}"))
        return super().complete(request)


class Slow(Replies):
    name = "slow"

    def complete(self, request: CompletionRequest) -> Completion:
        time.sleep(float(os.environ.get("MEMGPT_TEST_SLOW", "3")))
        return super().complete(request)


class Words(LetterEmbedder):
    max_tokens = 40

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: list[str]) -> Any:
        time.sleep(float(os.environ.get("MEMGPT_TEST_EMBED_SLOW", "0")))
        return super().embed(texts)


def _words(model: str | None) -> Words:
    time.sleep(float(os.environ.get("MEMGPT_TEST_EMBED_LOAD", "0")))
    return Words()


@hookimpl
def register_embedders(register: Any) -> None:
    register(EmbedderSpec(name="words", factory=_words))


def _broken(settings: Any) -> Any:
    raise RuntimeError("the broken test backend always fails")


@hookimpl
def register_backends(register: Any) -> None:
    register(
        BackendSpec(
            name="scripted",
            factory=lambda settings: Replies(context_window=WINDOW),
            needs_endpoint=False,
            capabilities=Replies.capabilities,
        )
    )
    register(
        BackendSpec(
            name="slow",
            factory=lambda settings: Slow(context_window=WINDOW),
            needs_endpoint=False,
            capabilities=Slow.capabilities,
        )
    )
    register(BackendSpec(name="broken", factory=_broken, needs_endpoint=False))


def main() -> None:
    load = plugins._load_modules
    plugins._load_modules = lambda failures: [*load(failures), ("test-backends", sys.modules[__name__])]  # type: ignore[assignment]
    from memgpt.cli.app import run

    sys.argv[0] = "memgpt"
    run()


if __name__ == "__main__":
    main()
