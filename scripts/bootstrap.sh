#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# Installs the CPU build of torch first: an open `torch` requirement would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.re2llm-installed"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "re2llm-tui: setting up $VENV (first run: ~6 min, llama-cpp-python compiles once)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
# llama-cpp-python: build only the text engine the workbench uses (no multimodal mtmd/llava
# library, no llama.cpp tools, tests, examples or server binaries); set CMAKE_ARGS to override.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"}
"$VENV/bin/python" -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
