#!/usr/bin/env bash
# Run the whole test suite in the workspace venv. One llama.cpp thread keeps a busy 2-core machine fast.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export MEMGPT_THREADS="${MEMGPT_THREADS:-1}" OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export MEMGPT_LLAMA_SERVER="${MEMGPT_LLAMA_SERVER:-$root/.cache/llama-server/bin/llama-server}"
exec .venv/bin/python -m pytest --durations=25 "$@"
