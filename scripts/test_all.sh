#!/bin/sh
# Runs the whole suite: format, lint, type and documentation checks (scripts/doc_check.sh), then every test
# under Deno, Bun and Node 24, and the public-API and socket tests under Node 24 against the built npm package.
# Ends with one line "N passed, N failed" summed over the three runtimes; exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
export PATH NO_COLOR=1 RUST_BACKTRACE=0 FORCE_COLOR=0
logs="$(mktemp -d)"
status=0
total_pass=0
total_fail=0

step() { # name, command...
  name="$1"
  shift
  echo "== $name"
  # A step that hangs (a leaked socket keeping a test process alive) fails after 10 minutes instead. (Not
  # node's --test-force-exit: it ends each file's process before all of its results reached the runner,
  # which then reports fewer tests than ran.)
  began=$(date +%s)
  timeout -k 10 600 "$@" >"$logs/$name.log" 2>&1
  code=$?
  if [ "$code" -eq 0 ]; then
    echo "   ok ($(($(date +%s) - began)) s)"
  else
    echo "   FAILED after $(($(date +%s) - began)) s, exit $code$([ "$code" -ge 124 ] && echo ' (timeout?)') ($*)"
    # Progress lines ("Check file", "Download …") hide the errors: show the rest first.
    grep -v -E '^(Check|Download) ' "$logs/$name.log" | tail -n 60
    # Bun's summary names the failed tests only: show their errors too.
    echo "   -- errors:"
    grep -n -B2 -A12 -E '^error: |^\(fail\) ' "$logs/$name.log" | head -n 120
    status=1
  fi
}

count() { # log file, pass pattern, fail pattern -> adds to the totals
  p=$(sed -n "$2" "$1" | tail -n 1)
  f=$(sed -n "$3" "$1" | tail -n 1)
  p=${p:-0}
  f=${f:-0}
  echo "   $p passed, $f failed"
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
}

step fmt deno fmt --check
step lint deno lint
step check deno check mod.ts client.ts broker.ts src/ tests/ scripts/
step doc sh scripts/doc_check.sh

step deno deno test -A --no-check tests/
count "$logs/deno.log" 's/.*| \([0-9]*\) passed.*/\1/p' 's/.* | \([0-9]*\) failed.*/\1/p'

step bun bun test --timeout 60000 tests/
count "$logs/bun.log" 's/^ *\([0-9]*\) pass$/\1/p' 's/^ *\([0-9]*\) fail$/\1/p'

step node node --test --test-timeout=60000 'tests/**/*_test.ts'
count "$logs/node.log" 's/^ℹ pass \([0-9]*\)$/\1/p' 's/^ℹ fail \([0-9]*\)$/\1/p'

# The public-API, socket and cluster tests again, against the built npm package (npm/esm), not the sources.
step npm-build node scripts/build_npm.ts
step node-npm node --import ./scripts/npm_hooks.ts --test --test-timeout=60000 \
  'tests/client/**/*_test.ts' 'tests/broker/**/*_test.ts' 'tests/transport/**/*_test.ts' \
  'tests/interop/**/*_test.ts' 'tests/cli/**/*_test.ts' 'tests/cluster/**/*_test.ts'
count "$logs/node-npm.log" 's/^ℹ pass \([0-9]*\)$/\1/p' 's/^ℹ fail \([0-9]*\)$/\1/p'

if [ "$total_pass" -eq 0 ]; then status=1; fi
if [ "$total_fail" -ne 0 ]; then status=1; fi
rm -rf "$logs"
echo "$total_pass passed, $total_fail failed"
exit "$status"
