"""``memgpt server``: agents over HTTP, with an OpenAI-compatible chat endpoint (see docs/server.md).

Importing this module is cheap: FastAPI and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

from typing import Any

from memgpt import hookimpl


@hookimpl
def register_commands(register: Any) -> None:
    from memgpt.cli.spec import CommandSpec
    from memgpt_server.command import server

    register(CommandSpec(name="server", callback=server, help="Serve agents over HTTP (OpenAI-compatible chat endpoint)."))
