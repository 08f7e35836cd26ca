"""Saved KV states, so that a side call (the summarizer) does not cost the agent its evaluated prefix.

Within one context llama.cpp reuses the longest common prefix of the previous prompt for free. But one
unrelated prompt overwrites that prefix, and the agent's next step would re-evaluate its whole ~1.5k-token
prompt. Before a prompt evicts a large evaluated prefix, the backend saves that sequence's state here
(bytes from ``llama_state_seq_get_data``); a later prompt that shares more with a saved state than with the
live cache restores it. Entries are kept least-recently-used first, within a byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    # Compare in strides first: prompts share long prefixes, and slice equality runs in C.
    stride = 256
    while i + stride <= n and a[i : i + stride] == b[i : i + stride]:
        i += stride
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class SavedState:
    tokens: tuple[int, ...]
    state: bytes


class StateCache:
    """Least-recently-used saved sequence states, at most ``capacity_bytes`` in all."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[tuple[int, ...], SavedState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return sum(len(entry.state) for entry in self._entries.values())

    def put(self, tokens: Sequence[int], state: bytes) -> bool:
        """Keep ``state`` (the KV cache holding ``tokens``); False when it alone exceeds the budget."""
        if len(state) > self.capacity_bytes:
            return False
        key = tuple(tokens)
        # A saved state that is a prefix of this one is now redundant.
        for other in [k for k in self._entries if len(k) <= len(key) and key[: len(k)] == k]:
            del self._entries[other]
        self._entries[key] = SavedState(key, state)
        while self.size_bytes > self.capacity_bytes:
            self._entries.popitem(last=False)
        return True

    def best(self, prompt: Sequence[int]) -> tuple[int, SavedState | None]:
        """The saved state sharing the longest prefix with ``prompt``, and that length."""
        best_len, best = 0, None
        for entry in self._entries.values():
            shared = common_prefix(entry.tokens, prompt)
            if shared > best_len:
                best_len, best = shared, entry
        if best is not None:
            self._entries.move_to_end(best.tokens)
        return best_len, best

    def clear(self) -> None:
        self._entries.clear()
