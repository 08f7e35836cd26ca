"""Where agents, recall messages and archival passages are kept."""

from memgpt.storage.base import AgentRecord, Passage, Storage
from memgpt.storage.spec import StorageSpec

__all__ = ["AgentRecord", "Passage", "Storage", "StorageSpec"]
