"""The plugin story for real: a third-party package is pip-installed into a throwaway virtual
environment, appears in `memgpt plugins` and in the choices of `memgpt configure`, and is gone after
`pip uninstall`. A plugin that raises at import is reported while the others keep loading.

The throwaway venv sees the workspace's packages through a `.pth` file (so nothing is downloaded) but
installs and uninstalls the plugins in its own site-packages, leaving the workspace untouched.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a fresh virtual environment and installs packages into it

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = next((root / "lib").glob("python3*/site-packages"))
    workspace_site = next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    (purelib / "_workspace.pth").write_text(f"import site; site.addsitedir({workspace_site!r})\n")
    return root


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    return subprocess.run([str(venv / "bin" / "python"), *args], capture_output=True, text=True, env=env)


def pip(venv: Path, *args: str) -> None:
    result = run(venv, "-m", "pip", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def plugins_json(venv: Path) -> dict:
    result = run(venv, "-m", "memgpt", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def configure_choices(venv: Path) -> str:
    """The wrapper choices `memgpt configure` offers, as its error for an unknown name lists them."""
    result = run(venv, "-m", "memgpt", "configure", "--yes", "--model-wrapper", "?")
    assert result.returncode == 2
    return result.stderr


def test_install_list_configure_uninstall(venv: Path) -> None:
    before = plugins_json(venv)
    assert "wrapper-example" not in {p["name"] for p in before["plugins"]}

    pip(venv, "install", "--no-deps", "--no-build-isolation", str(FIXTURES / "memgpt-wrapper-example"))
    after = plugins_json(venv)
    example = next(p for p in after["plugins"] if p["name"] == "wrapper-example")
    assert example["distribution"] == "memgpt-wrapper-example" and example["version"] == "1.2.3"
    assert example["registers"] == {"wrappers": ["example-plain"]}
    assert "example-plain" in configure_choices(venv)
    configured = run(venv, "-m", "memgpt", "configure", "--yes", "--model-wrapper", "example-plain")
    assert configured.returncode == 0, configured.stderr

    pip(venv, "uninstall", "--yes", "memgpt-wrapper-example")
    gone = plugins_json(venv)
    assert "wrapper-example" not in {p["name"] for p in gone["plugins"]}
    assert "example-plain" not in configure_choices(venv)
    assert {p["name"] for p in gone["plugins"]} == {p["name"] for p in before["plugins"]}


def test_a_plugin_written_against_the_sdk_alone_passes_its_contract_from_outside_the_workspace(
    venv: Path, tmp_path: Path
) -> None:
    source = FIXTURES / "memgpt-wrapper-example" / "src"
    for module in source.rglob("*.py"):
        imported = [
            node.module
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memgpt")
        ]
        assert set(imported) <= {"memgpt.plugin"}, f"{module.name} imports {imported}"
    pip(venv, "install", "--no-deps", "--no-build-isolation", str(FIXTURES / "memgpt-wrapper-example"))
    try:
        outside = tmp_path / "elsewhere"
        shutil.copytree(FIXTURES / "memgpt-wrapper-example" / "tests", outside / "tests")
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers", "tests"],
            capture_output=True, text=True, cwd=outside, env={**os.environ, "PYTHONPATH": ""},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert re.search(r"\b(\d+) passed", result.stdout) and " failed" not in result.stdout
    finally:
        pip(venv, "uninstall", "--yes", "memgpt-wrapper-example")


def test_plugin_that_raises_at_import_is_reported_and_the_rest_load(venv: Path) -> None:
    baseline = {p["name"] for p in plugins_json(venv)["plugins"]}
    pip(venv, "install", "--no-deps", "--no-build-isolation", str(FIXTURES / "memgpt-plugin-broken"))
    try:
        data = plugins_json(venv)
        assert {p["name"] for p in data["plugins"]} == baseline
        [failure] = [f for f in data["failures"] if f["plugin"] == "broken"]
        assert failure["stage"] == "import" and failure["distribution"] == "memgpt-plugin-broken"
        assert "needs a library that is not installed" in failure["error"]
        table = run(venv, "-m", "memgpt", "plugins")
        assert table.returncode == 0 and "broken" in table.stdout and "import failed" in table.stdout
    finally:
        pip(venv, "uninstall", "--yes", "memgpt-plugin-broken")
