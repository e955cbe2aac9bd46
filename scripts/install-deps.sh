#!/usr/bin/env bash
# Installs everything libcdp needs to build, test and run, from Debian 12 packages only.
# Idempotent: packages already present are skipped, and apt-get update runs only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  librocksdb-dev libabsl-dev libsimdjson-dev libfmt-dev
  pybind11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libroaring-dev libssl-dev libcpp-httplib-dev libphonenumber-dev libprotobuf-dev libre2-dev libjemalloc-dev
  python3 python3-dev python3-venv python3-pip python3-setuptools python3-wheel
  python3-pytest python3-numpy python3-pandas
  curl
  chromium
)

# Node.js and npm for the Segment SDK tests (tests/segment-sdk): Debian's, only when node (or npm) is missing, so a
# node installed otherwise (e.g. NodeSource's, which bundles npm) is kept.
if ! command -v node >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
