"""Fixtures of the Ollama plugin's tests: the shared dialect test servers (``tests/dialects``), among them the
Ollama one (``tests/dialects/ollama.py``), built from Ollama's API documentation because Ollama itself cannot
be installed here."""

from __future__ import annotations

from tests.dialects.fixtures import dead_endpoint, dialect_server, dialect_servers, ollama_server  # noqa: F401
