"""``memgpt`` with a scripted backend and a cheap embedder registered through the real plugin path, for
server tests that need no model. Run it like the console script: ``python scripted_server.py server``.

The backend ``scripted-server`` answers from the last user message of the prompt:

- ``slow:N ...``: waits N seconds (a float), then replies (to hold an agent busy);
- ``fail-once ...``: the first time this exact text is seen, the backend is unreachable (the message is
  left pending); later it replies;
- ``fail-after X``: appends X (asking for a heartbeat), then the backend is unreachable;
- ``remember X``: appends X to the human block (asking for a heartbeat), then replies ``noted``;
- ``then-slow:N X``: appends X at once (asking for a heartbeat), then waits N seconds and replies;
- anything else: replies ``echo: <message>``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from memgpt import hookimpl, plugins
from memgpt.contract.backend import Backend, BackendSpec, Capabilities
from memgpt.contract.types import BackendStatus, Completion, CompletionRequest, Usage
from memgpt.embeddings.spec import EmbedderSpec
from memgpt.errors import BackendUnreachable
from memgpt.testing.scripted import LetterEmbedder, call

WINDOW = 8192
_failed: set[str] = set()


def last_input(prompt: str) -> tuple[str, bool]:
    """The last user message in ``prompt``, and whether a heartbeat came after it."""
    at = prompt.rfind('{"type": "user_message"')
    if at < 0:
        return "", False
    event, _ = json.JSONDecoder().raw_decode(prompt, at)
    return str(event.get("message", "")), '"type": "heartbeat"' in prompt[at:]


class Scripted(Backend):
    name = "scripted-server"
    capabilities = Capabilities(constraints=("gbnf", "json_schema"), tokenizer=False, context_probe=True)

    def complete(self, request: CompletionRequest) -> Completion:
        text, after_heartbeat = last_input(request.prompt)
        if text.startswith("slow:"):
            time.sleep(float(text[5:].split()[0]))
        if text.startswith("then-slow:") and after_heartbeat:
            time.sleep(float(text[10:].split()[0]))
        if text.startswith("fail-after ") and after_heartbeat:
            raise BackendUnreachable("scripted backend: unreachable on purpose", endpoint="script")
        if text.startswith("fail-once") and text not in _failed:
            _failed.add(text)
            raise BackendUnreachable("scripted backend: unreachable on purpose", endpoint="script")
        if text.startswith(("remember ", "then-slow:", "fail-after ")) and not after_heartbeat:
            out = call("core_memory_append", name="human", content=text.split(" ", 1)[1], request_heartbeat=True)
        elif text.startswith("remember "):
            out = call("send_message", message="noted")
        else:
            out = call("send_message", message=f"echo: {text}")
        tokens = self.count_tokens(request.prompt)
        usage = Usage(prompt_tokens=tokens, completion_tokens=self.count_tokens(out), evaluated_tokens=tokens, exact=False)
        return Completion(text=out, usage=usage, constrained_by="gbnf" if request.constraint is not None else None)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def check(self) -> BackendStatus:
        return BackendStatus(ok=True, model="script", context_window=WINDOW)

    def context_window(self) -> int | None:
        return WINDOW


@hookimpl
def register_backends(register: Any) -> None:
    register(
        BackendSpec(
            name="scripted-server", factory=lambda settings: Scripted(), needs_endpoint=False, capabilities=Scripted.capabilities
        )
    )


@hookimpl
def register_embedders(register: Any) -> None:
    register(EmbedderSpec(name="letters", factory=lambda model: LetterEmbedder()))


CONFIG = """version = 1
[model]
backend = "scripted-server"
wrapper = "chatml-grammar"
[embedding]
provider = "letters"
"""


def install() -> None:
    """Add this module to the plugins memgpt loads (in this process)."""
    load = plugins._load_modules
    if getattr(load, "scripted_server", False):
        return

    def loading(failures: Any) -> Any:
        return [*load(failures), ("test-scripted-server", sys.modules[__name__])]

    loading.scripted_server = True  # type: ignore[attr-defined]
    plugins._load_modules = loading  # type: ignore[assignment]
    plugins.reset_registry()


if __name__ == "__main__":
    sys.modules.setdefault("scripted_server", sys.modules[__name__])
    install()
    from memgpt.cli.app import run

    sys.argv[0] = "memgpt"
    run()
