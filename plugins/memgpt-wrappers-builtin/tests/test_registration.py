"""The plugin registers exactly the wrapper names MemGPT users know (plus ChatML and auto), cheaply, and
`memgpt plugins` shows them."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from memgpt.cli.app import get_app
from memgpt.contract.wrapper import WrapperOptions
from memgpt.plugins import get_registry

NAMES = {
    "chatml", "chatml-grammar", "chatml-hints", "chatml-hints-grammar",
    "llama3", "llama3-grammar", "llama3-hints-grammar",
    "airoboros-l2-70b-2.1", "airoboros-l2-70b-2.1-grammar",
    "dolphin-2.1-mistral-7b", "dolphin-2.1-mistral-7b-grammar",
    "zephyr-7B", "zephyr-7B-grammar",
    "qwen3", "qwen3-grammar", "deepseek-r1", "deepseek-r1-grammar",
    "auto",
}  # fmt: skip


def test_memgpt_plugins_lists_every_wrapper_from_this_distribution() -> None:
    result = CliRunner().invoke(get_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    plugin = next(p for p in json.loads(result.output)["plugins"] if p["name"] == "wrappers-builtin")
    assert plugin["distribution"] == "memgpt-wrappers-builtin"
    assert set(plugin["registers"]["wrappers"]) == NAMES
    assert set(plugin["hooks"]) == {"register_wrappers", "wrapper_for_model"}


def test_every_spec_makes_the_wrapper_it_describes() -> None:
    wrappers = get_registry().wrappers
    for name in NAMES:
        spec = wrappers[name]
        assert spec.plugin == "wrappers-builtin" and spec.description
        wrapper = spec.factory(WrapperOptions())
        assert wrapper.uses_grammar == spec.uses_grammar == (name.endswith("-grammar") or name == "auto")
        if name != "auto":
            assert wrapper.name == name


def test_registration_imports_nothing_heavy() -> None:
    # Registering must not load jinja2, the parser or llama_cpp: `memgpt --help` stays fast.
    code = (
        "import sys; from memgpt.plugins import get_registry; get_registry().wrapper('chatml');"
        "heavy = [m for m in ('jinja2', 'json_repair', 'jsonschema', 'llama_cpp', 'memgpt_wrappers_builtin.render') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
