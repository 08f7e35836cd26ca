"""The config file: defaults, round trip, clear errors naming the bad key, atomic 0600 saves, secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt.config import (
    Config,
    api_key_env_var,
    config_path,
    credentials_path,
    home,
    load_api_key,
    load_config,
    parse_config,
    save_api_key,
    save_config,
)
from memgpt.errors import ConfigError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_file_gives_the_embedded_default() -> None:
    config = load_config()
    assert (config.model.backend, config.model.wrapper, config.storage.engine) == (
        "llamacpp-embedded",
        "chatml-grammar",
        "sqlite",
    )
    assert config.model.model is None  # the backend falls back to the shipped SmolLM2


def test_round_trip_and_user_only_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "fresh"))
    config = Config.model_validate({"model": {"backend": "webui", "endpoint": "http://localhost:5000", "context_window": 8192}})
    path = save_config(config)
    assert load_config() == config
    assert mode(home()) == 0o700 and mode(path) == 0o600
    assert [p.name for p in home().iterdir()] == ["config.toml"]  # no temp file left behind
    assert "context_window = 8192" in path.read_text()


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[model]\nwraper = "chatml"\n', Path("/x/config.toml"))
    message = str(info.value)
    assert "unknown key 'model.wraper'" in message and "did you mean 'wrapper'?" in message and "memgpt configure" in message


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"bad value for 'model.context_window'"):
        parse_config("[model]\ncontext_window = 12\n", Path("c.toml"))


def test_malformed_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[model\nbackend = ", Path("c.toml"))


@pytest.mark.parametrize(("version", "expected"), [(99, "newer than this memgpt"), (0, "older version")])
def test_other_versions_are_explained(version: int, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(f"version = {version}\n", Path("c.toml"))


def test_load_config_reports_the_file_path() -> None:
    config_path().write_text("[storage]\nengine = 3\n")
    with pytest.raises(ConfigError, match=str(config_path())):
        load_config()


def test_api_keys_live_in_a_0600_credentials_file_not_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    save_api_key("lmstudio", "sk-secret-123")
    save_config(Config())
    assert mode(credentials_path()) == 0o600
    assert "sk-secret-123" not in config_path().read_text()
    key = load_api_key("lmstudio")
    assert key is not None and key.get_secret_value() == "sk-secret-123"
    assert "sk-secret" not in repr(key) and "sk-secret" not in str(key)
    monkeypatch.setenv(api_key_env_var("lmstudio"), "from-env")
    assert load_api_key("lmstudio").get_secret_value() == "from-env"  # type: ignore[union-attr]
    save_api_key("lmstudio", None)
    monkeypatch.delenv(api_key_env_var("lmstudio"))
    assert load_api_key("lmstudio") is None


def test_saving_is_atomic_when_the_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    save_config(Config())
    before = config_path().read_text()

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(OSError):
        save_config(Config.model_validate({"model": {"backend": "vllm"}}))
    assert config_path().read_text() == before
    assert [p.name for p in home().iterdir()] == ["config.toml"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_config_parser_only_raises_config_error(text: str) -> None:
    try:
        parse_config(text, Path("fuzz.toml"))
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "storage", "defaults", "embedding", "version", "zzz"]),
        st.one_of(
            st.integers(),
            st.text(),
            st.dictionaries(
                st.text(max_size=12), st.one_of(st.integers(), st.text(), st.booleans(), st.none().map(lambda _: 1.5))
            ),
        ),
    )
)
def test_config_parser_handles_adversarial_structures(data: dict[str, object]) -> None:
    import tomli_w

    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return
    try:
        parse_config(text, Path("fuzz.toml"))
    except ConfigError:
        pass


def test_a_config_that_is_not_utf8_is_a_config_error_naming_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memgpt.config import load_config
    from memgpt.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_bytes(b"[model]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 at offset 13\).*memgpt configure --yes"):
        load_config(path)


def test_check_endpoint_takes_http_urls_only() -> None:
    from memgpt.config import check_endpoint

    assert check_endpoint(" http://localhost:8080 ") == "http://localhost:8080"
    for bad in ("not a url", "localhost:8080", "ftp://host", "http://", "http://host:port"):
        with pytest.raises(ValueError, match="is not a server URL"):
            check_endpoint(bad)


def test_a_home_that_is_a_file_is_a_config_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from memgpt.config import home
    from memgpt.errors import ConfigError

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("MEMGPT_HOME", str(not_a_folder))
    with pytest.raises(ConfigError, match="is not a folder; set MEMGPT_HOME to a folder"):
        home()


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", " 2x"])
def test_memgpt_threads_that_is_not_a_thread_count_is_one_config_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from memgpt.config import env_threads

    monkeypatch.setenv("MEMGPT_THREADS", raw)
    with pytest.raises(ConfigError, match="MEMGPT_THREADS"):
        env_threads()


@pytest.mark.parametrize(("raw", "threads"), [("", None), ("1", 1), (" 4 ", 4)])
def test_memgpt_threads_read_once_for_every_backend(monkeypatch: pytest.MonkeyPatch, raw: str, threads: int | None) -> None:
    from memgpt.config import ModelSettings, env_threads
    from memgpt.session import backend_settings

    monkeypatch.setenv("MEMGPT_THREADS", raw)
    assert env_threads() == threads
    assert backend_settings(ModelSettings()).threads == threads
    assert backend_settings(ModelSettings(threads=3)).threads == 3


def test_backend_options_in_the_config_reach_the_backend() -> None:
    """``[model.options]`` is how a user sets what a backend's README lists (llama.cpp's state cache, the
    HTTP retry pause, Ollama's keep_alive): the table reaches the backend's settings as written."""
    from memgpt.http import HTTPClient
    from memgpt.session import backend_settings
    from memgpt_backend_koboldcpp.backend import KoboldCppBackend

    config = parse_config('[model]\nbackend = "koboldcpp"\n[model.options]\nbackoff = 0.25\nquiet = true\n', Path("c.toml"))
    settings = backend_settings(config.model)
    assert settings.options == {"backoff": 0.25, "quiet": True}
    backend = KoboldCppBackend(settings)
    assert isinstance(backend.http, HTTPClient) and backend.http.backoff == 0.25
    backend.close()


def test_a_backend_option_that_is_not_a_scalar_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.options"):
        parse_config("[model.options]\nstate_cache_mb = [1, 2]\n", Path("c.toml"))
