#!/usr/bin/env bash
# Runs the compiled tests with node's test runner. Usage: run-tests.sh [unit|integration]
# Unit tests run two files at a time; multi-process integration tests run one file at a time
# so their ranks are not starved of the machine's cores. Ends with one "N passed, N failed" line.
# --test-force-exit: a test that fails before closing its servers must not keep its file (and make test) open.
# The counts come from the spec summary on stdout (kept in build/test-results/<name>.out); the results of an earlier
# run are cleared first, so a unit-only run never counts a stale integration.out.
set -uo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
mapfile -t unit < <(find build -name '*.test.js' ! -name '*.integration.test.js' -not -path '*/node_modules/*' | sort)
mapfile -t integration < <(find build -name '*.integration.test.js' -not -path '*/node_modules/*' | sort)
rm -rf build/test-results
mkdir -p build/test-results
status=0
run() { # name concurrency files...
  local name=$1 concurrency=$2; shift 2
  [ $# -eq 0 ] && return 0
  node --test --test-force-exit --test-concurrency="$concurrency" \
    --test-reporter=spec --test-reporter-destination=stdout "$@" | tee "build/test-results/$name.out"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
start=$(date +%s)
[ "$which" = integration ] || run unit 2 "${unit[@]}"
[ "$which" = unit ] || run integration 1 "${integration[@]}"
pass=0; fail=0; skip=0
for f in build/test-results/*.out; do
  [ -f "$f" ] || continue
  p=$(grep -E '^ℹ pass ' "$f" | tail -1 | awk '{print $3}'); pass=$((pass + ${p:-0}))
  x=$(grep -E '^ℹ fail ' "$f" | tail -1 | awk '{print $3}'); fail=$((fail + ${x:-0}))
  s=$(grep -E '^ℹ skipped ' "$f" | tail -1 | awk '{print $3}'); skip=$((skip + ${s:-0}))
done
echo "wall time: $(( $(date +%s) - start ))s"
echo "tests: ${pass} passed, ${fail} failed, ${skip} skipped"
# No count at all means the runner's summary went missing: not a pass.
[ $((pass + fail)) -gt 0 ] || { echo "no test results were counted"; exit 1; }
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
