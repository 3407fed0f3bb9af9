#!/usr/bin/env bash
# Builds the project (scripts/setup.sh), then runs the transfer demo:
# build/sipreferral-demo (tools/demo/), which starts build/sipreferral-agent
# as Bob and performs a blind and an attended transfer between Alice, Bob
# and Carol on 127.0.0.1. Arguments are passed to the demo (--help).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

DEMO=./build/sipreferral-demo
if [[ ! -x "$DEMO" ]]; then
  echo "demo.sh: $DEMO was not built (see the build output above)" >&2
  exit 2
fi
exec "$DEMO" "$@"
