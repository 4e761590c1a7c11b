#!/usr/bin/env bash
# Runs every test: the C unit tests given as arguments, the busted specs inside the host, then
# the dashboard's tests in a real browser (spec/browser: Debian's chromium, playwright-core).
# Each run ends with "N passed, N failed"; this script adds them up and prints the total as
# its last line. Exits non-zero when any test failed or a runner crashed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 status=0

# A sanitizer build: every process the tests start (hosts the specs run, too) writes its
# reports to files here instead of a stderr that a spec may have sent elsewhere; any report
# (a leak included) fails the run.
sanlogs=""
if [ "$(cat build/variant 2>/dev/null)" = san ]; then
  sanlogs=$(mktemp -d)
  export ASAN_OPTIONS="detect_leaks=1:log_path=$sanlogs/asan:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:log_path=$sanlogs/ubsan:${UBSAN_OPTIONS:-}"
fi
run() {
  local out rc line
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$line" ]; then
    echo "run-tests: '$*' exited $rc without a result line" >&2
    failed=$((failed + 1)); status=1; return
  fi
  passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
  failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
  if [ "$rc" -ne 0 ]; then
    echo "run-tests: '$*' exited $rc after its result line (a crash at exit?)" >&2
    status=1
  fi
}

echo "== layers (scripts/layers.sh)"
run bash scripts/layers.sh

for t in "$@"; do
  echo "== $t"
  run "$t"
done
echo "== specs (sssn-host test spec)"
run ./sssn-host test spec
echo "== browser (node spec/browser/run.mjs)"
if [ -x /usr/bin/chromium ] && command -v node >/dev/null && [ -d node_modules/playwright-core ]; then
  run node spec/browser/run.mjs
else
  echo "run-tests: the browser tests need /usr/bin/chromium, node and node_modules/playwright-core (scripts/deps.sh installs them)" >&2
  failed=$((failed + 1)); status=1
fi

if [ -n "$sanlogs" ]; then
  reports=$(ls "$sanlogs" | wc -l)
  if [ "$reports" -gt 0 ]; then
    echo "== sanitizer reports ($reports): each counts as a failed test" >&2
    for f in "$sanlogs"/*; do echo "-- $f" >&2; cat "$f" >&2; done
    failed=$((failed + reports)); status=1
  fi
  rm -rf "$sanlogs"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && exit $status
exit 1
