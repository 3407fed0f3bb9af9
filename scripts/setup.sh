#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs (skipped when they are
# all present), then configures and builds.
#   bash scripts/setup.sh                 -> build/      (RelWithDebInfo)
#   SR_SANITIZE=1 bash scripts/setup.sh   -> build-asan/ (Debug, ASan+UBSan)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
  build-essential cmake pkg-config libosip2-dev swig liblua5.4-dev lua5.4
  python3-dev python3-pytest python3-venv python3-setuptools sip-tester
  clang libclang-rt-14-dev tshark valgrind python3-matplotlib
)

missing=()
for p in "${PACKAGES[@]}"; do
  # "install ok installed" only: a removed package leaves a config-files entry.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup.sh: not root and no sudo; cannot install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, quietly.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' |
    "${SUDO[@]}" debconf-set-selections
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
fi

if [[ "${SR_SANITIZE:-0}" == 1 ]]; then
  BUILD_DIR=build-asan
  CMAKE_ARGS=(-DSR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
else
  BUILD_DIR=build
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi

cmake -S . -B "$BUILD_DIR" -DPython3_EXECUTABLE=/usr/bin/python3 "${CMAKE_ARGS[@]}"
cmake --build "$BUILD_DIR" -j2
