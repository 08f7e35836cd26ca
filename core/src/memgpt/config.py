"""The config file: pydantic models, TOML on disk under the MemGPT home, atomic saves.

Layout of ``$MEMGPT_HOME`` (default ``~/.memgpt``, created 0700)::

    config.toml        the settings below (human-readable, safe to edit)
    credentials.toml   API keys per backend, 0600, never printed
    memgpt.db          agents, recall and archival memory (default storage)
    personas/ humans/ presets/   the user's own additions

Names of backends, wrappers, embedders and storage engines are checked against what plugins registered
when they are used (``Registry.get``), so a config can name a plugin that is installed later.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from memgpt._home import home as home  # re-exported: memgpt.config.home is the public name
from memgpt.errors import ConfigError

CONFIG_VERSION = 1
DEFAULT_BACKEND = "llamacpp-embedded"
DEFAULT_WRAPPER = "chatml-grammar"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    """Which LLM the agent talks to and how."""

    backend: str = DEFAULT_BACKEND
    endpoint: str | None = None
    model: str | None = None
    wrapper: str = DEFAULT_WRAPPER
    context_window: int | None = Field(default=None, ge=256, description="None = ask the backend")
    max_tokens: int = Field(default=1024, ge=16, description="tokens reserved for each model turn; bounds the strings of a call")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for in-process models")
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="fixed limit in seconds for every server request; None = derived from max_tokens and the measured speed",
    )
    turn_timeout: float | None = Field(
        default=None, gt=0, description="the most seconds one turn may wait on the backend; None = no turn deadline"
    )
    temperature: float = Field(default=0.7, ge=0)
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="backend-specific options (`[model.options]`), e.g. llama.cpp's state_cache_mb; each backend's README lists its own",
    )


class EmbeddingSettings(_Section):
    provider: str = "sentence-transformers"
    model: str | None = None


class DefaultsSettings(_Section):
    preset: str = "memgpt_chat"
    persona: str = "sam_pov"
    human: str = "basic"


class StorageSettings(_Section):
    engine: str = "sqlite"
    uri: str | None = Field(default=None, description="the engine's database (e.g. postgresql://user@host/db), no password")


class Config(_Section):
    """The whole ``config.toml``."""

    version: int = CONFIG_VERSION
    model: ModelSettings = Field(default_factory=ModelSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    defaults: DefaultsSettings = Field(default_factory=DefaultsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)


def env_threads() -> int | None:
    """``MEMGPT_THREADS`` as a thread count, ``None`` when unset or empty; anything but a positive whole number
    is a ``ConfigError`` (one line), never a silent default or a raw validation error."""
    raw = os.environ.get("MEMGPT_THREADS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"MEMGPT_THREADS={raw!r} is not a thread count; set it to a whole number of 1 or more, or unset it")
    return int(raw)


def check_endpoint(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else ValueError saying what a valid one looks like."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in url.strip():
        raise ValueError(f"{url!r} is not a server URL; give one like http://localhost:8080")
    return url.strip()


def config_path() -> Path:
    return home() / "config.toml"


def credentials_path() -> Path:
    return home() / "credentials.toml"


def _describe(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


def _explain(error: ValidationError, path: Path) -> ConfigError:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        key = _describe(loc)
        if item["type"] == "extra_forbidden":
            known = list(_model_for(loc).model_fields)
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known keys: {', '.join(known)})"
            lines.append(f"unknown key {key!r}{hint}")
        else:
            lines.append(f"bad value for {key!r}: {item['msg']}")
    fix = f"edit {path} or run `memgpt configure` to write a fresh one"
    return ConfigError(f"config file {path}: " + "; ".join(lines) + f" — {fix}")


def parse_config(text: str, path: Path) -> Config:
    """Parse TOML text into a Config, or raise ConfigError naming the bad key and how to fix it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}) — fix it or run `memgpt configure`") from None
    version = data.get("version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(
            f"config file {path} has version {version!r}, newer than this memgpt understands ({CONFIG_VERSION}); "
            "upgrade memgpt or run `memgpt configure` to rewrite it"
        )
    if version < CONFIG_VERSION:
        raise ConfigError(f"config file {path} is from an older version ({version}); run `memgpt configure` to update it")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path) from None


def load_config(path: Path | None = None) -> Config:
    """The saved config, or defaults when there is none yet."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}) — "
            "fix it or run `memgpt configure --yes` to write a fresh one"
        ) from None
    return parse_config(text, path)


def _dump_toml(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(_drop_none(data))


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its unset values and its empty nested tables (no bare ``[model.options]`` header)."""
    kept = {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in data.items() if v is not None}
    return {k: v for k, v in kept.items() if v != {} or not isinstance(data[k], dict)}


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path} ({exc.strerror}); check that {path.parent} is writable (or set MEMGPT_HOME)"
        ) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    header = "# memgpt configuration — written by `memgpt configure`; safe to edit by hand.\n"
    write_atomic(path, header + _dump_toml(config.model_dump(mode="json")))
    return path


def _read_credentials() -> dict[str, Any]:
    path = credentials_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"credentials file {path} is unreadable ({type(exc).__name__}); delete it and run `memgpt configure`"
        ) from None


def api_key_env_var(backend: str) -> str:
    return "MEMGPT_API_KEY_" + "".join(c if c.isalnum() else "_" for c in backend.upper())


def load_api_key(backend: str) -> SecretStr | None:
    """The API key for ``backend``: ``MEMGPT_API_KEY_<BACKEND>`` if set, else credentials.toml."""
    value = os.environ.get(api_key_env_var(backend))
    if value is None:
        value = _read_credentials().get("backends", {}).get(backend, {}).get("api_key")
    return SecretStr(value) if value else None


def save_api_key(backend: str, key: str | None) -> None:
    """Store (or with ``None`` remove) the API key of ``backend`` in credentials.toml, mode 0600."""
    data = _read_credentials()
    backends = data.setdefault("backends", {})
    if key:
        backends.setdefault(backend, {})["api_key"] = key
    else:
        backends.pop(backend, None)
    write_atomic(credentials_path(), _dump_toml(data), mode=0o600)


def split_uri_password(uri: str) -> tuple[str, str | None]:
    """``uri`` without the password of its ``user:password@`` part, and that password (None if none);
    ValueError for text that is not a URI with a scheme."""
    from urllib.parse import urlsplit, urlunsplit

    text = uri.strip()
    parts = urlsplit(text)
    if not parts.scheme or not text.startswith(f"{parts.scheme}://") or " " in text:
        raise ValueError(f"{uri!r} is not a database URI; give one like postgresql://user:password@host:5432/memgpt")
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return text, None
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}")), password or None


def storage_password_env_var(engine: str) -> str:
    return "MEMGPT_STORAGE_PASSWORD_" + "".join(c if c.isalnum() else "_" for c in engine.upper())


def save_storage_password(engine: str, password: str | None) -> None:
    """Store (or with ``None`` remove) the password of storage ``engine``'s URI in credentials.toml (0600)."""
    data = _read_credentials()
    engines = data.setdefault("storage", {})
    if password:
        engines.setdefault(engine, {})["password"] = password
    else:
        engines.pop(engine, None)
    write_atomic(credentials_path(), _dump_toml(data), mode=0o600)


def load_storage_uri(settings: StorageSettings) -> SecretStr | None:
    """The configured storage URI with its password put back (``MEMGPT_STORAGE_PASSWORD_<ENGINE>`` if set,
    else credentials.toml); None when the config names no URI."""
    if not settings.uri:
        return None
    uri, inline = split_uri_password(settings.uri)
    password = inline or os.environ.get(storage_password_env_var(settings.engine))
    if password is None:
        password = _read_credentials().get("storage", {}).get(settings.engine, {}).get("password")
    if not password:
        return SecretStr(uri)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    user, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        return SecretStr(uri)  # no user to attach a password to
    return SecretStr(urlunsplit(parts._replace(netloc=f"{user}:{password}@{hostinfo}")))
