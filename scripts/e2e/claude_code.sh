#!/usr/bin/env bash
# Claude Code (`claude -p`) against Kronk's Anthropic API (/v1/messages), non-interactive.
# PASS: with its tools, every /v1/messages answer is a complete 200 stream (a 135M model may call
# tools until the turn limit); without tools (`--tools ""`), claude exits 0 and prints a reply.
# Without KRONK_E2E_URL it serves Kronk itself (scripts/e2e/serve.py) and re-runs inside it.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${KRONK_E2E_URL:-}" ]; then
    exec .venv/bin/python scripts/e2e/serve.py run --name claude_code -- bash scripts/e2e/claude_code.sh "$@"
fi
CLAUDE=$PWD/.e2e/npm/node_modules/.bin/claude
[ -x "$CLAUDE" ] || { echo "FAIL claude_code: $CLAUDE missing; run scripts/e2e/setup.sh"; exit 1; }
PROMPT=${E2E_PROMPT:-Say hello in five words.}
WORK=$KRONK_E2E_RUN/claude-work   # an empty project folder: no CLAUDE.md, no git repo
mkdir -p "$WORK" "$KRONK_E2E_RUN/claude-config"

# Only Kronk, on loopback: a dummy key, every model slot on smollm2, no telemetry,
# error reporting, auto-update or other nonessential traffic.
export ANTHROPIC_BASE_URL=$KRONK_E2E_URL
export ANTHROPIC_API_KEY=sk-ant-e2e-dummy
unset ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_USE_BEDROCK CLAUDE_CODE_USE_VERTEX
export ANTHROPIC_MODEL=$KRONK_E2E_MODEL
export ANTHROPIC_SMALL_FAST_MODEL=$KRONK_E2E_MODEL          # older name of the next one
export ANTHROPIC_DEFAULT_HAIKU_MODEL=$KRONK_E2E_MODEL
export ANTHROPIC_DEFAULT_SONNET_MODEL=$KRONK_E2E_MODEL
export ANTHROPIC_DEFAULT_OPUS_MODEL=$KRONK_E2E_MODEL
export CLAUDE_CODE_SUBAGENT_MODEL=$KRONK_E2E_MODEL
export CLAUDE_CONFIG_DIR=$KRONK_E2E_RUN/claude-config
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
export DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1
export CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY=1 DISABLE_COST_WARNINGS=1
export API_TIMEOUT_MS=${E2E_API_TIMEOUT_MS:-900000}   # a 15k-token prefill on 2 cores takes a while
# Claude Code asks for max_tokens 32000; SmolLM2 tends to loop in a tool call until it. Bound it (E2E_CLAUDE_MAX_OUTPUT_TOKENS= empty: the client's own).
E2E_CLAUDE_MAX_OUTPUT_TOKENS=${E2E_CLAUDE_MAX_OUTPUT_TOKENS-512}
if [ -n "$E2E_CLAUDE_MAX_OUTPUT_TOKENS" ]; then
    export CLAUDE_CODE_MAX_OUTPUT_TOKENS=$E2E_CLAUDE_MAX_OUTPUT_TOKENS
fi

OUT=$KRONK_E2E_RUN/claude.stdout ERR=$KRONK_E2E_RUN/claude.stderr
# 1. With its 24 tools. Two turns: SmolLM2 often answers with tool calls, which -p mode refuses (no
# permissions granted); the second request then carries tool_use/tool_result history. A 135M model
# may keep calling tools until the turn limit, so this run is judged by the protocol: every
# /v1/messages answer must be a 200 stream that ends with message_stop.
(cd "$WORK" && timeout "${E2E_TIMEOUT:-1200}" "$CLAUDE" -p "$PROMPT" --max-turns "${E2E_CLAUDE_MAX_TURNS:-2}" \
    >"$OUT" 2>"$ERR")
rc=$?
reply=$(tr -s '[:space:]' ' ' <"$OUT" | sed 's/^ //; s/ $//')
protocol=$(.venv/bin/python - "$KRONK_E2E_RUN/capture" <<'PY'
import json, pathlib, sys
answers = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*-POST-v1_messages.json"))]
bad = [a["response"]["status"] for a in answers
       if a["response"]["status"] != 200 or "event: message_stop" not in a["response"]["body"].get("text", "")]
print(f"{len(answers)} requests, all complete 200 streams" if answers and not bad else f"{len(answers)} requests, bad: {bad}")
PY
)
# 2. Without tools (`--tools ""`): the plain chat path must print a reply.
OUT2=$KRONK_E2E_RUN/claude-notools.stdout ERR2=$KRONK_E2E_RUN/claude-notools.stderr
(cd "$WORK" && timeout "${E2E_TIMEOUT:-1200}" "$CLAUDE" -p "$PROMPT" --tools "" >"$OUT2" 2>"$ERR2")
rc2=$?
reply2=$(tr -s '[:space:]' ' ' <"$OUT2" | sed 's/^ //; s/ $//')
with_tools="with tools: exit $rc, $protocol${reply:+, reply: $reply}"
if [ "$rc2" -eq 0 ] && [ -n "$reply2" ] && [[ $protocol == *"all complete 200 streams" ]]; then
    echo "PASS claude_code: $reply2 ($with_tools)"
    exit 0
fi
err=$(cat "$OUT2" "$ERR2" | tr -s '[:space:]' ' ' | cut -c1-400)
echo "FAIL claude_code: without tools: exit $rc2: ${err:-no output}; $with_tools"
exit 1
