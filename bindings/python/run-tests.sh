#!/usr/bin/env bash
# Builds cdp._core in a CMake build directory, installs the package into a venv and runs its tests.
#   bindings/python/run-tests.sh [BUILD_DIR] [VENV_DIR] [pytest args...]
# BUILD_DIR (default build-py) is configured when it has no CMakeCache.txt yet, and reused otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="$(realpath -m "${1:-$ROOT/build-py}")"
VENV_DIR="$(realpath -m "${2:-$ROOT/.venv-py}")"
shift $(( $# > 2 ? 2 : $# ))
PY=/usr/bin/python3

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCDP_BUILD_PYTHON=ON \
    -DCDP_BUILD_TESTS=OFF -DCDP_BUILD_BENCHMARKS=OFF -DCDP_BUILD_SERVER=OFF -DPython_EXECUTABLE="$PY"
fi
if [ ! -x "$VENV_DIR/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV_DIR"
fi
CDP_CMAKE_BUILD_DIR="$BUILD_DIR" "$VENV_DIR/bin/pip" install --quiet --no-build-isolation --no-index \
  --force-reinstall --no-deps "$ROOT/bindings/python"
cd "$ROOT"
"$VENV_DIR/bin/python" -m pytest bindings/python/tests -q "$@"
