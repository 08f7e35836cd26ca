"""memgpt backend plugin: koboldcpp (``/api/v1/generate`` with a GBNF grammar).

Registration imports nothing but core: the backend module loads when the backend is opened.
"""

from __future__ import annotations

from typing import Any

from memgpt.plugin import BackendSettings, BackendSpec, Capabilities, hookimpl


def _open(settings: BackendSettings) -> Any:
    from memgpt_backend_koboldcpp.backend import KoboldCppBackend

    return KoboldCppBackend(settings)


#: The backend's one declaration of its name, endpoint and capabilities; ``KoboldCppBackend.spec`` is this.
KOBOLDCPP = BackendSpec(
    name="koboldcpp",
    factory=_open,
    description="koboldcpp over HTTP (/api/v1/generate with a GBNF grammar)",
    default_endpoint="http://localhost:5001",
    capabilities=Capabilities(constraints=("gbnf",), tokenizer=True, context_probe=True, prefix_cache=True),
    verified="real server, recorded (koboldcpp 1.76, 2da346a; tests/test_koboldcpp_recorded.py replays it)",
)


@hookimpl
def register_backends(register: Any) -> None:
    register(KOBOLDCPP)
