#!/usr/bin/env bash
# Runs the C tests under valgrind memcheck: any memory error, and any leak
# (definite, indirect or possible), fails the run.
#
#   bash scripts/valgrind.sh [--build-dir DIR] [TEST...]
#
# DIR defaults to build (configured and built when missing); the tests to
# every DIR/tests/c/test_*. Each test's valgrind report goes to
# DIR/valgrind/TEST.log. Exits 1 if any test failed or valgrind complained.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

BUILD=build
TESTS=()
while (($#)); do
  case "$1" in
  --build-dir) BUILD="${2:?--build-dir needs a value}"; shift 2 ;;
  -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}"; exit 0 ;;
  -*) echo "valgrind.sh: unknown option $1" >&2; exit 2 ;;
  *) TESTS+=("$1"); shift ;;
  esac
done
if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind not found (scripts/setup.sh installs it)" >&2
  exit 1
fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD" -DPython3_EXECUTABLE=/usr/bin/python3 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1
fi
if grep -q '^SR_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  echo "valgrind.sh: $BUILD is a sanitizer build; valgrind needs a normal one" >&2
  exit 2
fi
# Only the C tests: an unrelated target that does not build is not ours.
targets=()
for src in tests/c/test_*.c; do
  targets+=(--target "$(basename "$src" .c)")
done
cmake --build "$BUILD" -j2 "${targets[@]}" >/dev/null || exit 1

if ((${#TESTS[@]} == 0)); then
  for exe in "$BUILD"/tests/c/test_*; do
    [[ -x "$exe" ]] && TESTS+=("$(basename "$exe")")
  done
fi

mkdir -p "$BUILD/valgrind"
LOGDIR="$(cd "$BUILD/valgrind" && pwd)"
export SR_ROOT="$ROOT"
# A T1 of 500 ms (tests/c/uas.h): under valgrind everything runs ~20 times
# slower, and the tests' usual 50 ms would bring retransmissions they do
# not expect.
export SR_TEST_T1_MS="${SR_TEST_T1_MS:-500}"
status=0
summary=()
for t in "${TESTS[@]}"; do
  echo "=== $t"
  log="$LOGDIR/$t.log"
  # 99 marks valgrind's own verdict apart from a test's failed checks.
  (cd "$BUILD/tests/c" &&
    valgrind --tool=memcheck --leak-check=full \
      --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite,indirect,possible \
      --error-exitcode=99 --num-callers=30 --log-file="$log" \
      "./$t" >"$LOGDIR/$t.out" 2>&1)
  rc=$?
  tail -1 "$LOGDIR/$t.out"
  grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' "$log" | sed 's/^==[0-9]*== /  /'
  if ((rc == 99)); then
    summary+=("FAIL  $t (valgrind errors: $log)")
    status=1
  elif ((rc != 0)); then
    summary+=("FAIL  $t (exit $rc: $LOGDIR/$t.out)")
    status=1
  else
    summary+=("ok    $t")
  fi
done
echo
printf '%s\n' "${summary[@]}"
exit "$status"
