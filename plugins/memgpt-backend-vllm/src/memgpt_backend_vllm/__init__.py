"""memgpt backend plugin: vLLM (``/v1/completions`` with ``structured_outputs``).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_vllm.backend import VLLMBackend

    return VLLMBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``VLLMBackend.spec`` is this.
VLLM = BackendSpec(
    name="vllm",
    factory=_open,
    description="vLLM over its OpenAI-compatible API (/v1/completions with structured_outputs)",
    default_endpoint="http://localhost:8000",
    # GBNF first: vLLM's default engine (xgrammar) reads our grammars, and under vLLM's JSON-schema path the model
    # may spend tokens on free whitespace between fields (seen on a real vLLM 0.32 with SmolLM2).
    capabilities=Capabilities(constraints=("gbnf", "json_schema"), tokenizer=True, context_probe=True, prefix_cache=True),
    verified="real server (vLLM 0.32.0, CPU; tests/test_vllm_real.py)",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(VLLM)
