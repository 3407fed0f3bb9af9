#!/usr/bin/env bash
# The whole benchmark: bash bench/run.sh [options of bench/run.py]
# (builds nothing: run scripts/setup.sh first, or pass --build-dir DIR).
exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/run.py" "$@"
