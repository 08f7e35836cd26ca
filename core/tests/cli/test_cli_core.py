"""`memgpt plugins` and `memgpt configure` driven as a user or a script would, without a terminal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from memgpt.cli.app import get_app
from memgpt.config import config_path, load_config


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(cli: CliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return cli.invoke(get_app(), list(args), input=input)


def test_plugins_json_lists_every_builtin_plugin(cli: CliRunner) -> None:
    result = invoke(cli, "plugins", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = {p["name"] for p in data["plugins"]}
    assert {"core", "webui", "llamacpp", "koboldcpp", "lmstudio", "vllm", "wrappers-builtin"} <= names
    assert all(p["distribution"] and p["version"] for p in data["plugins"])
    assert data["failures"] == []


def test_plugins_table_shows_distributions(cli: CliRunner) -> None:
    result = invoke(cli, "plugins")
    assert result.exit_code == 0
    assert "memgpt-backend-koboldcpp" in result.output and "memgpt-wrappers-builtin" in result.output


def test_configure_non_interactive_writes_the_choices(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from memgpt.plugins import get_registry

    registry = get_registry()
    backend = next(name for name, spec in sorted(registry.backends.items()) if spec.needs_endpoint)
    wrapper = sorted(registry.wrappers)[0]
    result = invoke(
        cli,
        "configure",
        "--yes",
        "--model-endpoint-type",
        backend,
        "--model-endpoint",
        "http://127.0.0.1:9",
        "--model-wrapper",
        wrapper,
        "--context-window",
        "4096",
    )
    assert result.exit_code == 0, result.output
    config = load_config()
    assert (config.model.backend, config.model.endpoint, config.model.wrapper, config.model.context_window) == (
        backend,
        "http://127.0.0.1:9",
        wrapper,
        4096,
    )
    assert config_path().is_file()


def test_configure_uses_the_backend_default_endpoint(cli: CliRunner) -> None:
    from memgpt.plugins import get_registry

    name, spec = next((n, s) for n, s in sorted(get_registry().backends.items()) if s.default_endpoint)
    assert invoke(cli, "configure", "--yes", "--backend", name).exit_code == 0
    assert load_config().model.endpoint == spec.default_endpoint


@pytest.mark.parametrize("flag", ["--model-wrapper", "--model-endpoint-type", "--storage"])
def test_configure_rejects_unknown_names_listing_choices(cli: CliRunner, flag: str) -> None:
    result = invoke(cli, "configure", "--yes", flag, "no-such-thing")
    assert result.exit_code == 2
    assert "unknown" in result.output and "'no-such-thing'; choose one of:" in result.output
    assert not config_path().exists()


def test_configure_stores_api_key_without_printing_it(cli: CliRunner) -> None:
    result = invoke(cli, "configure", "--yes", "--api-key", "sk-very-secret")
    assert result.exit_code == 0
    assert "sk-very-secret" not in result.output
    assert "sk-very-secret" not in config_path().read_text()
    assert "sk-very-secret" not in invoke(cli, "plugins", "--json").output


def test_malformed_config_is_one_clear_line_from_the_console_script() -> None:
    config_path().write_text("[model]\nbackend = 1\nwrapperr = 'x'\n")
    out = subprocess.run([sys.executable, "-m", "memgpt", "configure"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.wrapperr" in lines[0] and "model.backend" in lines[0], out.stderr


def test_configure_yes_repairs_a_malformed_config(cli: CliRunner) -> None:
    config_path().write_text("[model]\nwrapperr = 'x'\n")
    result = invoke(cli, "configure", "--yes")
    assert result.exit_code == 0, result.output
    assert "unknown key 'model.wrapperr'" in result.output
    assert load_config().model.wrapper == "chatml-grammar"


def test_version_and_help_exit_zero(cli: CliRunner) -> None:
    assert invoke(cli, "--version").output.startswith("memgpt ")
    assert "configure" in invoke(cli, "--help").output


def test_configure_refuses_an_endpoint_that_is_not_a_url(cli: CliRunner) -> None:
    result = invoke(cli, "configure", "--yes", "--backend", "llamacpp", "--model-endpoint", "not a url")
    assert result.exit_code == 2 and "'not a url' is not a server URL; give one like http://localhost:8080" in result.output
    assert not config_path().exists()


def test_configure_takes_wrapper_names_in_any_case(cli: CliRunner) -> None:
    result = invoke(cli, "configure", "--yes", "--model-wrapper", "CHATML-Grammar")
    assert result.exit_code == 0, result.output
    assert load_config().model.wrapper == "chatml-grammar"


def test_configure_refuses_an_endpoint_for_an_in_process_backend(cli: CliRunner) -> None:
    result = invoke(cli, "configure", "--yes", "--model-endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "--model-endpoint does not apply to backend 'llamacpp-embedded', which runs in process" in result.output
    assert "llamacpp" in result.output.split("server backend (")[1]
    assert not config_path().exists()
