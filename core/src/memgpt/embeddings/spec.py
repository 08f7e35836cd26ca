"""The embedder contract registered through ``register_embedders``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EmbedderSpec:
    """A named embedding provider. ``factory(model)`` returns an object with ``dimensions: int`` and
    ``embed(texts: list[str]) -> numpy.ndarray`` (one L2-normalised row per text), and optionally
    ``max_tokens: int`` (the most tokens of text the model reads) with ``count_tokens(text) -> int``: text
    headed for archival memory is then chunked to fit, counted in the model's own tokens. Heavy imports
    (torch, sentence-transformers) belong inside the factory."""

    name: str
    factory: Callable[[str | None], Any]
    description: str = ""
    default_model: str | None = None
    plugin: str = ""
