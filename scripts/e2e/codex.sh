#!/usr/bin/env bash
# Codex CLI (`codex exec`) against Kronk's Responses API (/v1/responses), non-interactive.
# A custom model provider in a throwaway CODEX_HOME points it at Kronk with a dummy key.
# PASS: codex exits 0 and prints a non-empty last message. FAIL: anything else, with its error.
# Without KRONK_E2E_URL it serves Kronk itself (scripts/e2e/serve.py) and re-runs inside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${KRONK_E2E_URL:-}" ]; then
    exec .venv/bin/python scripts/e2e/serve.py run --name codex -- bash scripts/e2e/codex.sh "$@"
fi
CODEX=$PWD/.e2e/npm/node_modules/.bin/codex
[ -x "$CODEX" ] || { echo "FAIL codex: $CODEX missing; run scripts/e2e/setup.sh"; exit 1; }
PROMPT=${E2E_PROMPT:-Say hello in five words.}
WORK=$KRONK_E2E_RUN/codex-work   # an empty folder, not a git repo (--skip-git-repo-check)
export CODEX_HOME=$KRONK_E2E_RUN/codex-home
mkdir -p "$WORK" "$CODEX_HOME"
# Only Kronk, on loopback: no analytics, feedback upload or update check.
cat >"$CODEX_HOME/config.toml" <<TOML
model = "$KRONK_E2E_MODEL"
model_provider = "kronk"
check_for_update_on_startup = false

[model_providers.kronk]
name = "Kronk"
base_url = "$KRONK_E2E_URL/v1"
env_key = "KRONK_E2E_CODEX_KEY"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false
TOML
export KRONK_E2E_CODEX_KEY=sk-e2e-dummy
unset OPENAI_API_KEY OPENAI_BASE_URL CODEX_API_KEY

OUT=$KRONK_E2E_RUN/codex.stdout ERR=$KRONK_E2E_RUN/codex.stderr LAST=$KRONK_E2E_RUN/codex.last
rm -f "$LAST"
timeout "${E2E_TIMEOUT:-1200}" "$CODEX" exec --skip-git-repo-check --ephemeral --color never \
    --sandbox read-only -C "$WORK" -o "$LAST" "$PROMPT" </dev/null >"$OUT" 2>"$ERR"
rc=$?
reply=$( [ -f "$LAST" ] && tr -s '[:space:]' ' ' <"$LAST" | sed 's/^ //; s/ $//')
if [ "$rc" -eq 0 ] && [ -n "$reply" ]; then
    echo "PASS codex: $reply"
    exit 0
fi
err=$(grep -v '^\s*$' "$ERR" "$OUT" | grep -i -m3 -E 'error|fail|unexpected|status' | tr -s '[:space:]' ' ' | cut -c1-600)
[ -n "$err" ] || err=$(cat "$ERR" "$OUT" | tail -5 | tr -s '[:space:]' ' ' | cut -c1-600)
echo "FAIL codex: exit $rc: ${err:-no output}"
exit 1
