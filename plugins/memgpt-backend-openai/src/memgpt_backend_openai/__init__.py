"""memgpt backend plugin: any OpenAI-compatible completions server (``/v1/completions``).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_openai.backend import OpenAIBackend

    return OpenAIBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``OpenAIBackend.spec`` is this.
OPENAI = BackendSpec(
    name="openai",
    factory=_open,
    description=(
        "any OpenAI-compatible completions server (LocalAI, llama-cpp-python, TabbyAPI, Ollama's /v1, vLLM, "
        "llama-server's /v1): /v1/completions, constraint field probed"
    ),
    default_endpoint="http://localhost:8000",
    # What the backend can do at best. An opened backend reports what its server really honours: the constraint
    # fields are probed once per server and session, the tokenizer and context endpoints are looked up.
    capabilities=Capabilities(constraints=("gbnf", "json_schema"), tokenizer=False, context_probe=True, prefix_cache=True),
    verified="real servers: llama-server /v1 (llama.cpp 0c1e570), llama-cpp-python 0.3.36 server, vLLM 0.32.0",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(OPENAI)
