"""Fixtures of the webui plugin's tests: the shared dialect test servers (``tests/dialects``), among them the
webui one (``tests/dialects/webui.py``), which ``test_webui_recorded.py`` keeps true to a real webui."""

from __future__ import annotations

from tests.dialects.fixtures import dead_endpoint, dialect_server, dialect_servers, webui_server  # noqa: F401
