"""Test servers for the HTTP dialects of servers that cannot be installed here, backed by real llama.cpp.

koboldcpp, text-generation-webui, LM Studio, vLLM and Ollama each get a small FastAPI app (one module each) that
speaks that server's documented API exactly and generates with llama-cpp-python under the constraint it
received, converted the way that server would. ``engine.py`` is the one shared model and lock, ``server.py``
the strict bodies and the uvicorn runner, ``faults.py`` the fault switch and request log, ``fixtures.py`` the
pytest fixtures. What each dialect accepts and answers, with sources: ``README.md`` here.
"""

from __future__ import annotations

import importlib
from typing import Any

DIALECTS = ("koboldcpp", "webui", "lmstudio", "vllm", "ollama")


def build(name: str, engine: Any, **options: Any) -> Any:
    """Build dialect ``name``'s app (a ``server.Dialect``) on ``engine``; options go to its ``build``."""
    if name not in DIALECTS:
        raise KeyError(f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}")
    return importlib.import_module(f".{name}", __name__).build(engine, **options)
