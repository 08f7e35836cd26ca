"""MemGPT for open, local LLMs: agents that manage their own memory through function calls."""

import pluggy

__version__ = "0.1.0"

#: Decorate plugin functions with ``@memgpt.hookimpl``; plugins never import pluggy themselves.
hookimpl = pluggy.HookimplMarker("memgpt")

__all__ = ["__version__", "hookimpl"]
