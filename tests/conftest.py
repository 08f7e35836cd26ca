"""Fixtures for the cross-package tests: the dialect test servers (see ``tests/dialects/fixtures.py``).

``dialect_server(name, **options)`` gives a running koboldcpp / webui / lmstudio / vllm test server backed by
the session's real SmolLM2; ``koboldcpp_server`` etc. are shortcuts; ``dead_endpoint`` is a URL nothing
listens on. Tests elsewhere (e.g. a backend plugin's tests) import the same fixtures into their conftest.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python -m pytest` from the repository root puts the root on sys.path; a bare `pytest` may not.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.dialects.fixtures import (  # noqa: E402,F401
    dead_endpoint,
    dialect_server,
    dialect_servers,
    koboldcpp_server,
    lmstudio_server,
    vllm_server,
    webui_server,
)

# The fixture plugins' own tests run from outside the workspace, in a throwaway venv that has them installed
# (tests/test_third_party_plugin.py), not here.
collect_ignore_glob = ["fixtures/*"]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    from tests.figures import FIGURES

    if FIGURES:
        terminalreporter.section("fault suite figures")
        for what, values in FIGURES.items():
            terminalreporter.line(
                f"{what}: {len(values) if len(values) > 1 else values[0]}"
                + (f" ({', '.join(values)})" if len(values) > 1 else "")
            )
