#!/usr/bin/env bash
# Builds the project (scripts/setup.sh), then runs the demo program
# build/sipreferral-demo (built from tools/demo/*.c), passing any arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

DEMO=./build/sipreferral-demo
if [[ ! -x "$DEMO" ]]; then
  echo "demo.sh: $DEMO was not built: the demo program (tools/demo/*.c) does not exist yet." >&2
  exit 2
fi
exec "$DEMO" "$@"
