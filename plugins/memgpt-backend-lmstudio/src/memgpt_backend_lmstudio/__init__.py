"""memgpt backend plugin: LM Studio (``/v1/completions`` with a ``response_format`` JSON schema).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_lmstudio.backend import LMStudioBackend

    return LMStudioBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``LMStudioBackend.spec`` is this.
LMSTUDIO = BackendSpec(
    name="lmstudio",
    factory=_open,
    description="LM Studio over its OpenAI-compatible API (/v1/completions with response_format json_schema)",
    default_endpoint="http://localhost:1234",
    # No tokenizer endpoint: token counts are estimates, corrected from each answer's usage.
    capabilities=Capabilities(constraints=("json_schema",), tokenizer=False, context_probe=True, prefix_cache=True),
    verified="documentation only (dialect test server; LM Studio is closed source)",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(LMSTUDIO)
