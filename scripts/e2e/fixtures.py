#!/usr/bin/env python3
"""Turn captured client requests into regression fixtures.

    python3 scripts/e2e/fixtures.py .e2e/runs/claude_code-latest [.e2e/runs/codex-latest ...]

Reads each run folder's capture/*.json (written by scripts/e2e/serve.py's proxy), names
every POST by what it is (the chat turn with tools, a title task, count_tokens, ...) and
writes the first of each kind to tests/server/fixtures/clients/<client>_<what>.json: the
request body exactly as the client sent it (secrets travel in headers, which are not kept).
tests/server/fixtures/clients/README.md is rewritten with one row per fixture: the endpoint,
the client's User-Agent and protocol headers, and what Kronk answered at capture time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "server" / "fixtures" / "clients"
PROTOCOL_HEADERS = ("user-agent", "anthropic-version", "anthropic-beta", "x-codex-beta-features", "originator")
INDEX_START = "<!-- fixtures:start -->"
INDEX_END = "<!-- fixtures:end -->"

# Open WebUI's background tasks, recognised by their prompt templates.
OPENWEBUI_TASKS = (
    ("title", re.compile(r"Generate a concise(, 3-5 word)? title", re.IGNORECASE)),
    ("tags", re.compile(r"Generate 1-3 broad tags", re.IGNORECASE)),
    ("follow_ups", re.compile(r"follow-up questions|Predict 3-5 useful messages", re.IGNORECASE)),
    ("queries", re.compile(r"Generate .{0,40}search quer", re.IGNORECASE)),
    ("autocomplete", re.compile(r"autocompletion", re.IGNORECASE)),
)


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages") or body.get("input") or "", ensure_ascii=False)


def openwebui_kind(path: str, body: dict[str, Any]) -> str | None:
    if path != "/v1/chat/completions":
        return None
    text = text_of(body)
    for kind, pattern in OPENWEBUI_TASKS:
        if pattern.search(text):
            return kind
    return "chat_tools" if body.get("tools") else "chat"


def claude_code_kind(path: str, body: dict[str, Any]) -> str | None:
    if path == "/v1/messages/count_tokens":
        return "count_tokens"
    if path != "/v1/messages":
        return None
    if any(isinstance(block, dict) and block.get("type") == "tool_result"
           for message in body.get("messages") or [] for block in _blocks(message)):
        return "messages_tool_result"
    if body.get("tools"):
        return "messages"
    if body.get("max_tokens") == 1:
        return "messages_quota"
    return "messages_notools"


def _blocks(message: dict[str, Any]) -> list[Any]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def codex_kind(path: str, body: dict[str, Any]) -> str | None:
    if path == "/v1/responses":
        return "responses"
    if path.startswith("/v1/responses/"):
        return "responses_" + path.rsplit("/", 1)[-1]
    if path == "/v1/chat/completions":
        return "chat"
    return None


CLASSIFIERS: dict[str, Callable[[str, dict[str, Any]], str | None]] = {
    "openwebui": openwebui_kind, "claude_code": claude_code_kind, "codex": codex_kind,
}


def client_of(run_dir: Path) -> str:
    name = run_dir.resolve().name
    for client in CLASSIFIERS:
        if name.startswith(client + "-") or name == client:
            return client
    raise SystemExit(f"fixtures: cannot tell the client from the folder name {name!r}")


def answer_of(record: dict[str, Any]) -> str:
    """Kronk's status and, for an error, its message: what the client got at capture time."""
    response = record.get("response") or {}
    status = response.get("status", "no response")
    body = (response.get("body") or response.get("partial_body") or {})
    payload = body.get("json")
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return f"{status}: {payload['error'].get('message', '')}"[:300]
    if response.get("client_disconnected") or response.get("error"):
        return f"{status}, the client hung up after {record.get('seconds', 0):.0f} s"
    return f"{status}"


def captures(run_dir: Path) -> Iterable[dict[str, Any]]:
    for path in sorted((run_dir / "capture").glob("*.json")):
        yield json.loads(path.read_text())


def collect(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    client = client_of(run_dir)
    classify = CLASSIFIERS[client]
    found: dict[str, dict[str, Any]] = {}
    for record in captures(run_dir):
        body = (record.get("body") or {}).get("json")
        if record.get("method") != "POST" or not isinstance(body, dict):
            continue
        kind = classify(record["path"], body)
        if kind is not None and kind not in found:
            found[kind] = record
    return [(f"{client}_{kind}.json", record) for kind, record in found.items()]


def index_row(name: str, record: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in record["headers"].items()}
    shown = "; ".join(f"`{k}: {headers[k]}`" for k in PROTOCOL_HEADERS if k in headers)
    body = record["body"]["json"]
    tools = len(body.get("tools") or [])
    return (f"| `{name}` | `{record['method']} {record['path']}` | {tools} | {shown} | "
            f"{answer_of(record)} |")


def write_index(rows: dict[str, str]) -> None:
    readme = FIXTURES / "README.md"
    old = readme.read_text() if readme.exists() else ""
    existing: dict[str, str] = {}
    if INDEX_START in old:
        for line in old.split(INDEX_START, 1)[1].split(INDEX_END, 1)[0].splitlines():
            match = re.match(r"\| `([^`]+\.json)` \|", line)
            if match:
                existing[match.group(1)] = line
    existing.update(rows)
    head = old.split(INDEX_START, 1)[0] if INDEX_START in old else (
        "# Real client requests\n\n"
        "Request bodies captured from real clients talking to `kronk server start` (SmolLM2-135M-Instruct,\n"
        "model name `smollm2`) through the logging proxy of `scripts/e2e/serve.py`; see docs/e2e.md.\n"
        "Each file is the body exactly as the client sent it; API keys travel in headers, which are\n"
        "not kept. Regenerate with `python3 scripts/e2e/fixtures.py .e2e/runs/<client>-latest`.\n\n")
    table = ["| file | endpoint | tools | client headers | Kronk's answer at capture |",
             "| --- | --- | --- | --- | --- |", *(existing[k] for k in sorted(existing))]
    stamp = time.strftime("%Y-%m-%d")
    readme.write_text(f"{head}{INDEX_START}\nLast capture: {stamp}.\n\n" + "\n".join(table) + f"\n{INDEX_END}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (.e2e/runs/<client>-<time>)")
    parser.add_argument("--only", help="comma-separated fixture kinds to write, e.g. messages,count_tokens")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rows: dict[str, str] = {}
    for run_dir in args.runs:
        for name, record in collect(run_dir):
            if only and not any(name.endswith(f"_{k}.json") for k in only):
                continue
            (FIXTURES / name).write_text(json.dumps(record["body"]["json"], indent=2, ensure_ascii=False) + "\n")
            rows[name] = index_row(name, record)
            print(f"{FIXTURES.relative_to(ROOT) / name}: {record['method']} {record['path']} -> {answer_of(record)}")
    if not rows:
        print("fixtures: no POST requests found", file=sys.stderr)
        return 1
    write_index(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
