"""memgpt backend plugin: llama.cpp, as a server (``llamacpp``) and in process (``llamacpp-embedded``).

Registration imports nothing heavy: the HTTP backend lives in ``server.py`` (httpx), the in-process one in
``embedded.py`` (llama-cpp-python, imported only when that backend is opened).
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _server(settings: BackendSettings) -> Any:
    from memgpt_backend_llamacpp.server import LlamaServerBackend

    return LlamaServerBackend(settings)


def _embedded(settings: BackendSettings) -> Any:
    from memgpt_backend_llamacpp.embedded import EmbeddedBackend

    return EmbeddedBackend(settings)


#: The ``llamacpp`` backend's one declaration of its name, endpoint and capabilities; ``LlamaServerBackend.spec``.
LLAMACPP = BackendSpec(
    name="llamacpp",
    factory=_server,
    description="llama.cpp llama-server over HTTP (/completion with GBNF or JSON schema)",
    default_endpoint="http://localhost:8080",
    capabilities=Capabilities(constraints=("gbnf", "json_schema"), tokenizer=True, context_probe=True, prefix_cache=True),
    verified="real server (llama.cpp llama-server, built by scripts/build-llama-server.sh; tests/test_server_real.py)",
)

#: The ``llamacpp-embedded`` backend's one declaration; ``EmbeddedBackend.spec``.
LLAMACPP_EMBEDDED = BackendSpec(
    name="llamacpp-embedded",
    factory=_embedded,
    description="llama.cpp in process (llama-cpp-python): any GGUF file, no server; default SmolLM2-135M",
    needs_endpoint=False,
    capabilities=Capabilities(constraints=("gbnf", "json_schema"), tokenizer=True, context_probe=True, prefix_cache=True),
    verified="real (llama-cpp-python in process; tests/test_embedded_backend.py)",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(LLAMACPP)
    register(LLAMACPP_EMBEDDED)
