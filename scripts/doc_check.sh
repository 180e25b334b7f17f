#!/bin/sh
# Checks the documentation: `deno doc --lint` over every entry point (each export has a summary, no public
# type refers to a private one), then runs the `@example` blocks of the entry points and of every file under
# src/ that has one as doc tests. Exits non-zero if either fails or if no doc test ran.
set -u
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
export PATH NO_COLOR=1

entry_points="mod.ts client.ts broker.ts src/codec/mod.ts src/machine/mod.ts src/transport/transport.ts
src/transport/memory.ts src/transport/websocket.ts src/runtime/mod.ts src/cluster/mod.ts"

echo "== deno doc --lint"
# shellcheck disable=SC2086 # the lists are split on purpose
if ! deno doc --lint $entry_points; then
  echo "deno doc --lint failed"
  exit 1
fi

# Examples often declare locals they never read, so the doc tests run with deno.json minus the unused-locals
# and unused-parameters checks. The copy sits at the root so that "@x/mqtt/…" resolves as in deno.json.
config=".doc_test.$$.deno.json"
log="$(mktemp)"
trap 'rm -f "$config" "$log"' EXIT
trap 'exit 1' HUP INT TERM
deno eval '
const config = JSON.parse(Deno.readTextFileSync("deno.json"));
delete config.compilerOptions.noUnusedLocals;
delete config.compilerOptions.noUnusedParameters;
Deno.writeTextFileSync(Deno.args[0], JSON.stringify(config, null, 2) + "\n");
' "$config" || exit 1

# The Bun adapter's examples need Bun itself (`Bun.listen`), so they cannot run here.
examples=$(grep -rl --include='*.ts' '@example' src | grep -v '^src/runtime/bun/' | sort)
files=$(printf '%s\n' $entry_points $examples | sort -u)

echo "== deno test --doc"
# With file arguments Deno tests those files only: their `Deno.test`s (src/ has none) and their doc blocks.
# shellcheck disable=SC2086
deno test -A --doc --config "$config" $files >"$log" 2>&1
status=$?
passed=$(sed -n 's/.* | \([0-9]*\) passed.*/\1/p' "$log" | tail -n 1)
if [ "$status" -ne 0 ]; then
  # Progress lines and the files without examples hide the errors.
  grep -v -E '^(Check|Download) |^running 0 tests from ' "$log" | tail -n 80
  echo "doc tests failed"
  exit 1
fi
if [ "${passed:-0}" -eq 0 ]; then
  echo "no doc test ran"
  exit 1
fi
echo "$passed doc tests passed"
