"""Every dotted ``memgpt…`` name that the docs, the READMEs or a docstring mentions exists: a renamed or
never-written class (``memgpt.agent.Agent`` once) fails here instead of misleading a plugin author."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NAME = re.compile(r"(?<![\w./-])(memgpt(?:_[a-z_]+)?(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# Dotted words that are file names, not Python names.
# Logger names are dotted too.
LOGGER = re.compile(r"getLogger\([^)]*\)")
# The package name the docs use for an example third-party plugin.
EXAMPLE = "memgpt_wrapper_mine"
NOT_PYTHON = re.compile(r"\.(toml|json|jsonl|db|log|md|py|txt|gguf|kv|lock|yaml|yml|sqlite|cfg|ini)$")


def sources() -> list[Path]:
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "plugins").glob("*/README.md")]
    docs += [ROOT / "bench" / "README.md", ROOT / "tests" / "dialects" / "README.md"]
    code = [*(ROOT / "core" / "src").rglob("*.py"), *(ROOT / "plugins").glob("*/src/**/*.py")]
    return [p for p in docs + code if p.is_file()]


def mentioned() -> dict[str, str]:
    names: dict[str, str] = {}
    for path in sources():
        for match in NAME.finditer(LOGGER.sub("", path.read_text(encoding="utf-8"))):
            name = match.group(1).rstrip(".")
            if not NOT_PYTHON.search(name) and name.split(".")[0] != EXAMPLE:
                names.setdefault(name, str(path.relative_to(ROOT)))
    return names


def resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError:
            return False
        return True
    return False


def test_the_scan_finds_the_documented_names() -> None:
    names = mentioned()
    assert "memgpt.plugin" in names or any(n.startswith("memgpt.plugin.") for n in names)
    assert len(names) > 20


@pytest.mark.parametrize("name", sorted(mentioned()))
def test_a_documented_name_exists(name: str) -> None:
    assert resolves(name), f"{name} (mentioned in {mentioned()[name]}) does not exist"
