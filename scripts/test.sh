#!/usr/bin/env bash
# The one test command: builds, then runs every suite that exists —
# C (ctest), Python (pytest), Lua scripts, SIPp — the C tests again under
# valgrind and under ASan+UBSan, and a short fuzz run. Exits non-zero if
# any suite failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

PY=/usr/bin/python3
passed=0
failed=0
results=()

# run NAME CMD... : runs one suite, records its outcome.
run() {
  local name="$1"
  shift
  echo
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
    results+=("ok    $name")
    return 0
  else
    local rc=$?
    failed=$((failed + 1))
    results+=("FAIL  $name (exit $rc)")
    return "$rc"
  fi
}

skip_failed() { # a suite that cannot run because its build failed
  failed=$((failed + 1))
  results+=("FAIL  $1 (not run: build failed)")
}

# pytest exits 5 when it collected nothing; that is fine only if there are
# no test files at all.
pytest_suite() {
  PYTHONPATH="$ROOT/build/python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pytest -q tests/python
  local rc=$?
  if [[ $rc -eq 5 ]] &&
    [[ -z "$(find tests/python -name 'test_*.py' -o -name '*_test.py' | head -1)" ]]; then
    echo "(no Python tests yet)"
    return 0
  fi
  return "$rc"
}

lua_suite() {
  LUA_PATH="$ROOT/build/lua/?.lua;$ROOT/tests/lua/?.lua;;" \
    LUA_CPATH="$ROOT/build/lua/?.so;;" \
    lua5.4 "$1"
}

asan_ctest() {
  ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    ctest --test-dir build-asan --output-on-failure
}

export SR_ROOT="$ROOT" SR_BUILD_DIR="$ROOT/build"

if run "build" bash scripts/setup.sh; then
  run "c (ctest)" ctest --test-dir build --output-on-failure
  if [[ -d tests/python ]]; then
    run "python (pytest)" pytest_suite
  fi
  shopt -s nullglob
  for f in tests/lua/*.lua; do
    run "lua: $f" lua_suite "$f"
  done
  shopt -u nullglob
  if [[ -f tests/sipp/run.sh ]]; then
    run "sipp" bash tests/sipp/run.sh
  fi
  run "bench smoke" bash bench/smoke.sh
  run "c under valgrind" bash scripts/valgrind.sh
else
  skip_failed "c (ctest)"
  skip_failed "c under valgrind"
fi

# The modules and the agent under the sanitizers too. The interpreters are
# not built with ASan, so its runtime is preloaded; CPython frees little at
# exit, so leaks are checked there by the suite's own live-object counts.
ASAN_LIB="$(gcc -print-file-name=libasan.so)"
asan_pytest() {
  LD_PRELOAD="$ASAN_LIB" ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc \
    SR_PY_BUILD="$ROOT/build-asan/python" SR_PY_SKIP_INSTALL=1 \
    PYTHONPATH="$ROOT/build-asan/python" "$PY" -m pytest -q -p no:cacheprovider tests/python
}
asan_lua() {
  LD_PRELOAD="$ASAN_LIB" ASAN_OPTIONS=detect_leaks=1 \
    LUA_PATH="$ROOT/build-asan/lua/?.lua;$ROOT/tests/lua/?.lua;;" \
    LUA_CPATH="$ROOT/build-asan/lua/?.so;;" lua5.4 "$1"
}

if run "build-asan" env SR_SANITIZE=1 bash scripts/setup.sh; then
  run "c under asan+ubsan (ctest)" asan_ctest
  if [[ -d tests/python ]]; then
    run "python under asan+ubsan" asan_pytest
  fi
  shopt -s nullglob
  for f in tests/lua/*.lua; do
    run "lua under asan+ubsan: $f" asan_lua "$f"
  done
  shopt -u nullglob
  if [[ -f tests/sipp/run.sh ]]; then
    run "sipp under asan+ubsan" env SR_BUILD_DIR="$ROOT/build-asan" bash tests/sipp/run.sh
  fi
else
  skip_failed "c under asan+ubsan (ctest)"
fi

# A short run of each fuzz target (clang, its own build-fuzz/); longer
# runs: bash scripts/fuzz.sh --seconds 600.
run "fuzz (short run)" bash scripts/fuzz.sh --seconds 15

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
