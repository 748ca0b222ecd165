#!/usr/bin/env bash
# Runs the compiled tests with node's test runner. Usage: run-tests.sh [unit|integration]
# Unit tests run two files at a time; multi-process integration tests run one file at a time
# so their ranks are not starved of the machine's cores. Ends with one "N passed, N failed" line.
# A test that fails before closing its servers must not keep its file (and make test) open: each group of files has a
# time limit (timeout kills the runner and its files). Not --test-force-exit: under load node 20.20 exits a file
# before its reporter has sent every result (request.test.js: 40 of 55 tests counted, none failed, 2 of 6 runs).
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
run() { # name concurrency limit-seconds files...
  local name=$1 concurrency=$2 limit=$3; shift 3
  [ $# -eq 0 ] && return 0
  timeout -k 30 "$limit" node --test --test-concurrency="$concurrency" \
    --test-reporter=spec --test-reporter-destination=stdout "$@" | tee "build/test-results/$name.out"
  local code=${PIPESTATUS[0]}
  [ "$code" -ne 124 ] || echo "the $name tests did not end within ${limit}s: a test left a server, socket or timer open"
  [ "$code" -eq 0 ] || status=1
}
start=$(date +%s)
# The limits are several times what a loaded 2-core machine takes (unit 2-4 min, integration 6-11 min).
[ "$which" = integration ] || run unit 2 1200 "${unit[@]}"
[ "$which" = unit ] || run integration 1 2400 "${integration[@]}"
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
