#!/usr/bin/env bash
# Install the real clients the end-to-end scripts drive, into folders git ignores:
#   .e2e/venv  Open WebUI + playwright (Python), with a CPU-only torch
#   .e2e/npm   Claude Code (@anthropic-ai/claude-code) and Codex CLI (@openai/codex)
# plus Debian's chromium for playwright (never `playwright install`: it downloads a browser
# build from outside the package registries). Takes minutes; safe to re-run (skips what is there).
#
# Pinned versions (override with the env vars) keep the captured request shapes reproducible:
#   E2E_OPENWEBUI=open-webui==0.12.4  E2E_PLAYWRIGHT=playwright==1.65.2
#   E2E_CLAUDE_CODE=@anthropic-ai/claude-code@2.1.197  E2E_CODEX=@openai/codex@0.171.0
#   E2E_TORCH="torch==2.13.0+cpu"
#
# torch: Open WebUI needs sentence-transformers, which needs torch. PyPI's Linux x86_64 torch
# wheels are CUDA builds: `pip install open-webui` pulls torch 2.14.1 + nvidia-* + triton,
# about 2.9 GiB of wheels. A CPU-only build (`+cpu`, 183 MiB) is only published on PyTorch's own
# index, which is unreachable here; this machine's pip find-links (/opt/wheels) carries
# torch-2.13.0+cpu, so we install that first and pip keeps it for open-webui. Where no `+cpu`
# wheel is reachable we fall back to PyPI's default torch (and say so).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
E2E=$ROOT/.e2e
OPENWEBUI=${E2E_OPENWEBUI:-open-webui==0.12.4}
PLAYWRIGHT=${E2E_PLAYWRIGHT:-playwright==1.65.2}
CLAUDE_CODE=${E2E_CLAUDE_CODE:-@anthropic-ai/claude-code@2.1.197}
CODEX=${E2E_CODEX:-@openai/codex@0.171.0}
TORCH=${E2E_TORCH:-torch==2.13.0+cpu}
PYTHON=${E2E_PYTHON:-python3}
mkdir -p "$E2E"

step() { printf '\n== %s\n' "$*"; }

step "Kronk venv and the default model"
if [ ! -x "$ROOT/.venv/bin/kronk" ]; then
    bash scripts/setup.sh
fi
"$ROOT/.venv/bin/python" scripts/fetch_models.py --only smollm2

step "chromium (Debian)"
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
chromium --version

step "Python clients in .e2e/venv: $TORCH, $OPENWEBUI, $PLAYWRIGHT"
[ -x "$E2E/venv/bin/python" ] || "$PYTHON" -m venv "$E2E/venv"
PIP=("$E2E/venv/bin/pip" install --disable-pip-version-check --quiet)
if ! "$E2E/venv/bin/python" -c 'import torch' 2>/dev/null; then
    if ! "${PIP[@]}" --only-binary=:all: "$TORCH"; then
        echo "setup: no CPU-only torch wheel ($TORCH) reachable; open-webui will pull PyPI's default (CUDA) torch, ~2.9 GiB" >&2
    fi
fi
"${PIP[@]}" "$OPENWEBUI" "$PLAYWRIGHT"
"$E2E/venv/bin/python" -c 'import torch, playwright; print("torch", torch.__version__)'
"$E2E/venv/bin/open-webui" --help >/dev/null

step "npm clients in .e2e/npm: $CLAUDE_CODE $CODEX"
mkdir -p "$E2E/npm"
# Claude Code's postinstall copies the platform's native binary over a placeholder.
npm install --prefix "$E2E/npm" --no-audit --no-fund --no-update-notifier "$CLAUDE_CODE" "$CODEX"
"$E2E/npm/node_modules/.bin/claude" --version
"$E2E/npm/node_modules/.bin/codex" --version

step "done: du -sh .e2e/*"
du -sh "$E2E"/* 2>/dev/null || true
