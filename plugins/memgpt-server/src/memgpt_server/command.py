"""``memgpt server``: the command (typer). FastAPI and uvicorn are imported only when it runs."""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from typing import Optional

import typer

KEY_ENV = "MEMGPT_SERVER_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configured_key() -> str | None:
    """The server's API key: ``MEMGPT_SERVER_API_KEY``, else ``[server] api_key`` in credentials.toml."""
    from memgpt.config import credentials_path
    from memgpt.errors import ConfigError

    value = os.environ.get(KEY_ENV)
    if value:
        return value
    path = credentials_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"credentials file {path} is unreadable ({type(exc).__name__}); fix or delete it") from None
    key = data.get("server", {}).get("api_key") if isinstance(data.get("server"), dict) else None
    return key if isinstance(key, str) and key else None


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs an API key."),
    port: int = typer.Option(8283, "--port", min=1, max=65535, help="Port to listen on."),
    api_key: Optional[str] = typer.Option(
        None,
        "--api-key",
        help=f"Require this key (`Authorization: Bearer KEY`). Default: ${KEY_ENV}, else \\[server] api_key in credentials.toml.",
    ),
    idle_close: float = typer.Option(300.0, "--idle-close", min=1, metavar="SECONDS", help="Close an agent idle this long."),
    max_open: int = typer.Option(16, "--max-open", min=1, help="Most agents open at once."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1024, metavar="BYTES", help="Largest request body accepted."),
    max_upload: int = typer.Option(
        10 << 20, "--max-upload", min=1024, metavar="BYTES", help="Largest document POST .../documents accepts."
    ),
    turn_timeout: Optional[float] = typer.Option(
        None,
        "--turn-timeout",
        min=1,
        metavar="SECONDS",
        help="The most seconds one turn may wait on the model (default: \\[model] turn_timeout).",
    ),
) -> None:
    """Serve agents over HTTP: the agent API and an OpenAI-compatible /v1/chat/completions (docs/server.md)."""
    from memgpt.cli.app import fail
    from memgpt.config import load_config

    key = api_key or configured_key()
    if not is_loopback(host) and not key:
        fail(
            f"--host {host} is reachable from other machines: give an API key (--api-key, ${KEY_ENV}, or "
            "[server] api_key in credentials.toml)",
            code=2,
        )
    try:
        import uvicorn
    except ImportError:
        fail("memgpt server needs uvicorn and fastapi: pip install memgpt-server", code=2)

    from memgpt_server.app import create_app
    from memgpt_server.host import Host

    config = load_config()  # a broken config fails here, once, not on every request
    timeout = turn_timeout if turn_timeout is not None else config.model.turn_timeout
    app = create_app(
        Host(idle_close=idle_close, max_open=max_open, turn_timeout=timeout),
        api_key=key,
        max_body=max_body,
        max_upload=max_upload,
    )
    shown = f"[{host}]" if ":" in host else host
    print(
        f"memgpt server on http://{shown}:{port} (API key {'required' if key else 'not required: loopback only'}); "
        f"OpenAPI schema at /openapi.json",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=True, timeout_graceful_shutdown=30)
    except OSError as exc:
        fail(f"cannot listen on {shown}:{port}: {exc.strerror or exc}")
