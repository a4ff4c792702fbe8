#!/usr/bin/env bash
# Every e2e client, one after another (CPU is scarce), each against its own fresh Kronk; a summary
# line per client. Exit 0 only when all pass. Usage: scripts/e2e/run_all.sh [client...]
# (clients: openwebui claude_code codex; default all). Install them first: scripts/e2e/setup.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(openwebui claude_code codex)
declare -A result
failed=0
for client in "${clients[@]}"; do
    script=scripts/e2e/$client.sh
    [ -f "$script" ] || { echo "run_all: no $script" >&2; exit 2; }
    echo "== $client" >&2
    start=$(date +%s)
    line=$(bash "$script" | tee /dev/stderr | grep -E '^(PASS|FAIL) ' | tail -1)
    [ -n "$line" ] || line="FAIL $client: no PASS/FAIL line (see .e2e/runs/$client-latest)"
    result[$client]="$line ($(( $(date +%s) - start )) s)"
    [[ $line == PASS* ]] || failed=1
done
echo
echo "== summary"
for client in "${clients[@]}"; do
    echo "${result[$client]}" | cut -c1-400
done
exit $failed
