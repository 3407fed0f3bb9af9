#!/usr/bin/env bash
# A tiny run of the benchmark (a few transfers through the agent, the
# floor program, the policy agents that exist), so it cannot rot. Asserts
# nothing about speed: it fails only if a transfer fails or a tool is
# missing. Uses the build in SR_BUILD_DIR (default build/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
/usr/bin/python3 "$ROOT/bench/run.py" --smoke \
  --build-dir "${SR_BUILD_DIR:-$ROOT/build}" --out "$OUT"
