"""memgpt backend plugin: Ollama (native ``/api/generate`` with ``raw: true`` and a JSON schema in ``format``).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_ollama.backend import OllamaBackend

    return OllamaBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``OllamaBackend.spec`` is this.
OLLAMA = BackendSpec(
    name="ollama",
    factory=_open,
    description="Ollama over its native API (/api/generate with a raw prompt and a JSON schema in `format`)",
    default_endpoint="http://localhost:11434",
    # JSON schema only: Ollama's `format` takes a schema (or "json") and no GBNF. No exact tokenizer: released
    # Ollama has no tokenize endpoint, so counts are estimates unless a server answers /api/tokenize.
    capabilities=Capabilities(constraints=("json_schema",), tokenizer=False, context_probe=True, prefix_cache=True),
    verified="documentation only (dialect test server from Ollama's docs/api.md, 2026-08-11)",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(OLLAMA)
