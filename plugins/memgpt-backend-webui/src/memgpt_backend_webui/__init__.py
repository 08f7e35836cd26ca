"""memgpt backend plugin: text-generation-webui (``/v1/completions`` with ``grammar_string``).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_webui.backend import WebUIBackend

    return WebUIBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``WebUIBackend.spec`` is this.
WEBUI = BackendSpec(
    name="webui",
    factory=_open,
    description="text-generation-webui over its OpenAI-compatible API (/v1/completions with grammar_string)",
    default_endpoint="http://localhost:5000",
    # No context probe: the web UI's API does not report the loaded context size.
    capabilities=Capabilities(constraints=("gbnf",), tokenizer=True, context_probe=False, prefix_cache=True),
    verified=(
        "real server, recorded (text-generation-webui v4.7.3 @ 1dcde41d, llama.cpp loader, 2026-12-02; "
        "tests/recordings), replayed against the dialect test server"
    ),
)


@hookimpl
def register_backends(register: Any) -> None:
    register(WEBUI)
