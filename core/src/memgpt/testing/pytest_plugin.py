"""The pytest plugin ``memgpt[testing]`` installs (entry point ``pytest11``): it registers the markers the
contract test bases use, so a plugin's own repository can subclass ``memgpt.testing.BackendContract`` or
``WrapperContract`` without copying memgpt's pytest settings (and ``--strict-markers`` passes)."""

from __future__ import annotations

from typing import Any

MARKERS = {
    "model": "needs a real model (the SmolLM2 GGUF and llama-cpp-python, or the backend's own server)",
    "server": "needs a native llama-server binary",
    "slow": "takes more than a few seconds",
}


def pytest_configure(config: Any) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
