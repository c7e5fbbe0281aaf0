#!/bin/sh
# Runs the three configs of "Run your own program" (README) with the ringmaster binary
# given as $1 and checks their results. Run by ctest as example.run_your_own_program.
set -eu
ringmaster="$1"
cd "$(dirname "$0")"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
check() {  # check RESULTS TEXT: the results file has a line with TEXT
  grep -qF -- "$2" "$1" || { echo "missing in $1: $2"; cat "$1"; exit 1; }
}
"$ringmaster" run python.toml --jobs python.jsonl --results "$out/python.jsonl" --no-progress || test $? -eq 1
check "$out/python.jsonl" '"id": "short", "status": "ok", "result": "{\"words\":3}"'
check "$out/python.jsonl" '"id": "long", "status": "ok", "result": "{\"words\":8}"'
check "$out/python.jsonl" '"id": "empty", "status": "failed", "error": {"kind": "exception", "message": "empty text"}'
"$ringmaster" run filter.toml --jobs filter.jsonl --results "$out/filter.jsonl" --no-progress
check "$out/filter.jsonl" '"result": "HELLO WORLD"'
check "$out/filter.jsonl" '"result": "RINGMASTER"'
"$ringmaster" run exec.toml --jobs exec.jsonl --results "$out/exec.jsonl" --no-progress
check "$out/exec.jsonl" '"id": "plain", "status": "ok", "result": "3"'
check "$out/exec.jsonl" '"id": "hostile", "status": "ok", "result": "16"'
echo "all three programs served their jobs"
