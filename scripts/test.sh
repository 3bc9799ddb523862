#!/usr/bin/env bash
# Install, build under ASan+UBSan, start a throw-away Redis on a free port,
# run every test (unit tests via ctest, black-box tests in tests/e2e), scan
# Redis for leaked canaries, stop what was started. Exit 0 only if all pass.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

bash scripts/deps.sh || exit 1

BUILD=${SP_TEST_BUILD:-$ROOT/build-asan}
mkdir -p "$BUILD"
echo "== build (ASan + UBSan, -Werror) in $BUILD"
build_into "$BUILD" -DSP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || exit 1

WORK=$(mktemp -d /tmp/sp-test.XXXXXX)
REDIS_PORT=$(free_port)
REDIS_PID=$(start_redis "$REDIS_PORT" "$WORK/redis") || exit 1
cleanup() {
  kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

export SP_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export SP_TEST_REDIS_PORT=$REDIS_PORT
export SP_BUILD_DIR=$BUILD
export SP_TEST_TMP=$WORK
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

passed=0; failed=0; failures=()
record() { if [ "$1" -eq 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); failures+=("$2"); fi; }

echo "== style: clang-format, banned functions"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find common conf store resolver proxy secretctl tests bench -name '*.[ch]')
clang-format --dry-run --Werror $files >"$WORK/format.log" 2>&1; rc=$?
[ $rc -ne 0 ] && head -20 "$WORK/format.log"
record $rc "clang-format"
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\('
grep -nE "$banned" $files | grep -v '^tests/' ; rc=$?
[ $rc -eq 0 ] && rc=1 || rc=0
record $rc "banned functions"

echo "== unit tests (ctest)"
(cd "$BUILD" && ctest --output-on-failure -j2 --timeout 300) ; record $? "ctest"

echo "== black-box tests (tests/e2e)"
for t in tests/e2e/test_*.py; do
  [ -e "$t" ] || continue
  echo "-- $t"
  timeout 600 /usr/bin/python3 "$t" "$BUILD"; record $? "$t"
done

echo "== fuzzing (libFuzzer, ${SP_FUZZ_SECONDS:-20} s per target)"
if command -v clang >/dev/null; then
  FUZZ=${SP_FUZZ_BUILD:-$ROOT/build-fuzz}
  if build_into "$FUZZ" -DSP_FUZZ=ON -DCMAKE_C_COMPILER=clang -DSP_TESTS=OFF \
       -DCMAKE_BUILD_TYPE=Debug >"$WORK/fuzz-build.log" 2>&1; then
    for f in "$FUZZ"/fuzz/fuzz_*; do
      mkdir -p "$WORK/corpus/$(basename "$f")"
      "$f" -max_total_time="${SP_FUZZ_SECONDS:-20}" -print_final_stats=1 -artifact_prefix="$WORK/" \
        "$WORK/corpus/$(basename "$f")" >"$WORK/$(basename "$f").log" 2>&1
      rc=$?; grep -h "stat::number_of_executed_units" "$WORK/$(basename "$f").log" |
        sed "s/^/  $(basename "$f"): /"
      [ $rc -ne 0 ] && tail -40 "$WORK/$(basename "$f").log"
      record $rc "$(basename "$f")"
    done
  else
    tail -20 "$WORK/fuzz-build.log"; record 1 "fuzz build"
  fi
else
  echo "SKIP: clang is not installed"
fi

echo "== leak scan of Redis"
/usr/bin/python3 tests/e2e/leak_scan.py "$REDIS_PORT"; record $? "leak scan"

echo
[ $failed -gt 0 ] && printf 'FAILED: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
