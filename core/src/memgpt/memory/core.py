"""Core memory: the ``persona`` and ``human`` blocks that are always in the agent's prompt.

Each block has a character limit (2000 by default, as in MemGPT). An edit that would exceed it is refused
with a message the model sees, so it can shorten its text; nothing is silently cut.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from memgpt.errors import FunctionError

DEFAULT_LIMIT = 2000
BLOCKS = ("persona", "human")


class MemoryEditError(FunctionError):
    """An edit the model asked for that cannot be applied; the message is shown to the model."""


@dataclass
class CoreMemory:
    blocks: dict[str, str] = field(default_factory=lambda: {name: "" for name in BLOCKS})
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_dict(cls, data: Mapping[str, str], limit: int = DEFAULT_LIMIT) -> CoreMemory:
        blocks = {name: "" for name in BLOCKS}
        blocks.update({k: str(v) for k, v in data.items()})
        return cls(blocks=blocks, limit=limit)

    def to_dict(self) -> dict[str, str]:
        return dict(self.blocks)

    def _block(self, name: str) -> str:
        if name not in self.blocks:
            raise MemoryEditError(f"no core memory block named {name!r}; the blocks are: {', '.join(self.blocks)}")
        return self.blocks[name]

    def _set(self, name: str, text: str) -> None:
        if len(text) > self.limit:
            raise MemoryEditError(
                f"edit refused: block {name!r} would hold {len(text)} characters, over its limit of {self.limit}. "
                "Shorten or summarize what you store (core_memory_replace can rewrite a passage more briefly)."
            )
        self.blocks[name] = text

    def set(self, name: str, text: str) -> str:
        """Replace the whole text of block ``name`` (an unknown block or text over the limit is refused)."""
        self._block(name)
        self._set(name, text)
        return self.blocks[name]

    def append(self, name: str, content: str) -> str:
        current = self._block(name)
        if content.strip() and content.strip() in (line.strip() for line in current.splitlines()):
            raise MemoryEditError(f"block {name!r} already holds the line {content.strip()!r}; nothing was added")
        self._set(name, f"{current}\n{content}" if current else content)
        return self.blocks[name]

    def replace(self, name: str, old: str, new: str) -> str:
        current = self._block(name)
        if not old:
            raise MemoryEditError("old_content is empty: give the exact text to replace (use core_memory_append to add text)")
        if old not in current:
            raise MemoryEditError(self._not_found(name, old, current))
        self._set(name, current.replace(old, new, 1))
        return self.blocks[name]

    @staticmethod
    def _not_found(name: str, old: str, current: str) -> str:
        # Small models rarely quote verbatim; show them the closest line so the retry can succeed.
        lines = [line for line in current.splitlines() if line.strip()]
        best = difflib.get_close_matches(old, lines, n=1, cutoff=0.0)
        hint = f" The closest line is: {best[0]!r}" if best else f" Block {name!r} is empty."
        return f"old_content {old!r} is not in block {name!r}; it must match the text exactly.{hint}"

    def render(self) -> str:
        """The memory section of the prompt: each block with its size against the limit."""
        parts = ["### Core memory (always visible to you; edit it with core_memory_append / core_memory_replace)"]
        for name, text in self.blocks.items():
            parts.append(f'<{name} characters="{len(text)}/{self.limit}">\n{text}\n</{name}>')
        return "\n".join(parts)
