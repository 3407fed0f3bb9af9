#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan in their own build directory, then runs each for a while.
#
#   bash scripts/fuzz.sh [--seconds N] [--build-dir DIR] [TARGET...]
#
# N defaults to 60 seconds per target; DIR to build-fuzz; the targets to all
# of them. Each run starts from tests/fuzz/corpus/TARGET and
# tests/fuzz/regressions/TARGET and writes what it learns to
# DIR/fuzz/corpus-TARGET (never into the source tree). A crash, leak or
# sanitizer report stops that target, leaves the input in
# DIR/fuzz/artifacts/ and makes the script exit 1; keep such an input in
# tests/fuzz/regressions/TARGET/ once the bug is fixed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

SECONDS_PER=60
BUILD=build-fuzz
TARGETS=()
while (($#)); do
  case "$1" in
  --seconds) SECONDS_PER="${2:?--seconds needs a value}"; shift 2 ;;
  --build-dir) BUILD="${2:?--build-dir needs a value}"; shift 2 ;;
  -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
  -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  *) TARGETS+=("$1"); shift ;;
  esac
done
if ! [[ "$SECONDS_PER" =~ ^[0-9]+$ ]] || ((SECONDS_PER < 1)); then
  echo "fuzz.sh: --seconds wants a positive integer" >&2
  exit 2
fi
if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang not found (scripts/setup.sh installs it)" >&2
  exit 1
fi

log="$(mktemp)"
if ! cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DSR_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE=/usr/bin/python3 \
  >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
cmake --build "$BUILD" --target fuzz -j2 || exit 1

if ((${#TARGETS[@]} == 0)); then
  for src in tests/fuzz/fuzz_*.c; do
    TARGETS+=("$(basename "$src" .c)")
  done
fi

mkdir -p "$BUILD/fuzz/artifacts"
status=0
summary=()
for t in "${TARGETS[@]}"; do
  exe="$BUILD/fuzz/$t"
  name="${t#fuzz_}"
  if [[ ! -x "$exe" ]]; then
    echo "fuzz.sh: no target $t" >&2
    status=1
    continue
  fi
  work="$BUILD/fuzz/corpus-$name"
  mkdir -p "$work"
  seeds=()
  for d in "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name"; do
    [[ -d "$d" ]] && seeds+=("$d")
  done
  echo
  echo "=== $t: $SECONDS_PER s"
  # -timeout: one input may not take a second (the loops are bounded);
  # a libFuzzer crash exits non-zero and names the artifact.
  "$exe" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -len_control=200 -dict=tests/fuzz/sip.dict \
    -artifact_prefix="$BUILD/fuzz/artifacts/$name-" -print_final_stats=1 \
    "$work" "${seeds[@]}" 2>"$BUILD/fuzz/$name.log"
  rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' \
    "$BUILD/fuzz/$name.log" || true
  if ((rc != 0)); then
    status=1
    grep -E 'ERROR|SUMMARY|artifact|Test unit written' "$BUILD/fuzz/$name.log" | head -20
    summary+=("FAIL  $t (exit $rc, log $BUILD/fuzz/$name.log)")
  else
    summary+=("ok    $t")
  fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$status"
