"""Text embedders for archival memory."""

from memgpt.embeddings.spec import EmbedderSpec

__all__ = ["EmbedderSpec"]
