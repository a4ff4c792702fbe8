#!/usr/bin/env bash
# Open WebUI driven in headless Chromium (scripts/e2e/openwebui.py) against a Kronk served for it.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -x .e2e/venv/bin/python ] || { echo "FAIL openwebui: .e2e/venv missing; run scripts/e2e/setup.sh"; exit 1; }
if [ -z "${KRONK_E2E_URL:-}" ]; then
    exec .venv/bin/python scripts/e2e/serve.py run --name openwebui -- .e2e/venv/bin/python scripts/e2e/openwebui.py "$@"
fi
exec .e2e/venv/bin/python scripts/e2e/openwebui.py "$@"
