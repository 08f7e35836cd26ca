#!/usr/bin/env bash
# Build llama.cpp's native `llama-server` (CPU only) from the llama.cpp sources vendored in the
# llama-cpp-python sdist, so the version matches the in-process binding. Output: .cache/llama-server/bin/.
# Skips the build when the binary is already there. Takes ~6-7 minutes on 2 idle cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.cache/llama-server"
bin="$out/bin/llama-server"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
  echo "llama-server: already built at $bin"
  exit 0
fi
py="${PYTHON:-$root/.venv/bin/python}"
work="$out/src"
mkdir -p "$work" "$out/bin"
if [[ ! -d "$work/llama_cpp_python-$version" ]]; then
  echo "llama-server: fetching the llama-cpp-python $version sdist from PyPI"
  "$py" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
fi
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
echo "llama-server: building from $src (cmake, CPU only; several minutes)"
cmake -S "$src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build "$out/build" --target llama-server -j "$(nproc)" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
cp "$out/build/bin/llama-server" "$bin"
echo "llama-server: built $bin"
