#!/usr/bin/env python3
"""Open WebUI in headless Chromium against Kronk's OpenAI API: pick smollm2, say hello, read the reply.

    bash scripts/e2e/openwebui.sh        # serves Kronk itself, then runs this with .e2e/venv's python

Runs inside `scripts/e2e/serve.py run` (it needs KRONK_E2E_URL and KRONK_E2E_RUN). Starts Open WebUI
offline on a free 127.0.0.1 port (no auth, no Ollama, no embedding model, OpenAI API at Kronk's /v1),
drives it with playwright in Debian's chromium: open the page, pick the model in the model selector,
send "Say hello", wait for the assistant's reply. PASS when a reply shows, no error toast or error
message appears, and Kronk answered every request (the chat and the background tasks such as title
generation) without an error status. Screenshots land in the run folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
OPEN_WEBUI = ROOT / ".e2e" / "venv" / "bin" / "open-webui"
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
PROMPT = os.environ.get("E2E_PROMPT", "Say hello")
# SmolLM2 on 2 busy cores with a big prompt: minutes per reply.
REPLY_TIMEOUT_S = float(os.environ.get("E2E_REPLY_TIMEOUT") or os.environ.get("E2E_TIMEOUT") or 1200)
TASK_TIMEOUT_S = float(os.environ.get("E2E_TASK_TIMEOUT") or 600)  # title/tags tasks after the reply
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Chromium's own background traffic (updates, sync, safe browsing) off; the page is confined by route().
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--no-first-run", "--disable-breakpad",
                 "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
                 "--disable-dev-shm-usage"]


class Fail(Exception):
    """The check failed; the message says how."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openwebui_env(run_dir: Path, kronk_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATA_DIR": str(run_dir / "openwebui-data"),
        "PORT": str(port),
        "OFFLINE_MODE": "True",            # also HF_HUB_OFFLINE=1 and no version check
        "WEBUI_AUTH": "False",
        "WEBUI_SECRET_KEY": "kronk-e2e-not-a-secret",
        "ENABLE_OLLAMA_API": "False",
        "ENABLE_OPENAI_API": "True",
        "OPENAI_API_BASE_URL": f"{kronk_url}/v1",
        "OPENAI_API_KEY": "sk-e2e-dummy",
        "RAG_EMBEDDING_MODEL": "",
        "RAG_RERANKING_MODEL": "",
        "ENABLE_VERSION_UPDATE_CHECK": "False",
        "SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "true", "ANONYMIZED_TELEMETRY": "false",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "AIOHTTP_CLIENT_TIMEOUT": str(int(REPLY_TIMEOUT_S)),
    })
    return env


@contextmanager
def open_webui(run_dir: Path, kronk_url: str) -> Iterator[str]:
    port = free_port()
    (run_dir / "openwebui-data").mkdir(exist_ok=True)
    log = (run_dir / "openwebui.log").open("wb")
    process = subprocess.Popen([str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=openwebui_env(run_dir, kronk_url, port), cwd=run_dir, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise Fail(f"open-webui exited with {process.returncode}; see {run_dir / 'openwebui.log'}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Fail("open-webui did not answer /health within 600 s")
            time.sleep(1)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def loopback_only(route: Route) -> None:
    """The page may load fonts or avatars from the internet; only loopback requests go out."""
    host = urlparse(route.request.url).hostname or ""
    if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
        route.continue_()
    else:
        route.abort("blockedbyclient")


def dismiss_dialogs(page: Page) -> None:
    """The first visit may show a changelog or onboarding dialog."""
    for label in ("Okay, Let's Go!", "Get started", "Dismiss"):
        button = page.get_by_role("button", name=label)
        if button.count() and button.first.is_visible():
            button.first.click()
            page.wait_for_timeout(500)


def served_model(kronk_url: str) -> str:
    """The id Kronk lists for its default model: what Open WebUI shows and sends."""
    with urllib.request.urlopen(kronk_url + "/v1/models", timeout=30) as answer:
        models = json.load(answer)["data"]
    if not models:
        raise Fail("Kronk's /v1/models lists no model")
    return str(models[0]["id"])


def pick_model(page: Page, model: str, shot: Callable[[str], object]) -> None:
    """Open the model selector in the chat box and click the model, as a person would."""
    selector = page.locator("#model-selector-model-button, [id^='model-selector-'][id$='-button']").first
    selector.wait_for(timeout=60_000)
    selector.click()
    listing = page.locator("#model-selector-list, [role='dialog'], [role='menu']").first
    listing.wait_for(timeout=30_000)
    search = page.get_by_placeholder(re.compile("Search", re.IGNORECASE))
    if search.count() and search.first.is_visible():
        search.first.fill(model.rsplit("/", 1)[-1][:12])
    shot("2-model-list")
    item = page.locator(f"[data-value='{model}']")
    if not item.count():
        item = page.get_by_role("button", name=re.compile(re.escape(model.rsplit("/", 1)[-1][:20])))
    item.first.click()
    page.wait_for_timeout(500)
    shown = selector.inner_text().strip()
    if not model.startswith(shown.rstrip(".…").strip()[:20]):
        raise Fail(f"the model selector shows {shown!r}, not {model!r}")


def error_toasts(page: Page) -> list[str]:
    toasts = page.locator("[data-sonner-toast][data-type='error']")
    return [t.inner_text().strip() for t in toasts.all()]


def wait_for_reply(page: Page) -> str:
    """The assistant's reply text once generation stopped; Fail on an error toast or message."""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if errors := error_toasts(page):
            raise Fail("error toast: " + " | ".join(errors))
        replies = page.locator("#response-content-container")
        text = replies.last.inner_text().strip() if replies.count() else ""
        message_error = page.locator(".chat-assistant [class*='error'], .chat-assistant .text-red-500")
        if message_error.count() and message_error.last.inner_text().strip():
            raise Fail("error in the reply: " + message_error.last.inner_text().strip()[:500])
        generating = page.locator("button[aria-label='Stop'], #stop-response-button, button:has-text('Stop')")
        done = not generating.count() or not generating.first.is_visible()
        if text and done and text == last:
            return text
        last = text
        page.wait_for_timeout(2000)
    raise Fail(f"no finished reply within {REPLY_TIMEOUT_S:.0f} s (last text: {last[:200]!r})")


def kronk_problems(run_dir: Path) -> list[str]:
    """Error answers Kronk gave (per the proxy's captures) and error lines in its log."""
    problems = []
    for path in sorted((run_dir / "capture").glob("*.json")):
        record = json.loads(path.read_text())
        response = record.get("response") or {}
        status = response.get("status")
        if status is None or status >= 400:
            body = (response.get("body") or response.get("partial_body") or {})
            detail = json.dumps(body.get("json", body.get("text", "")))[:300]
            problems.append(f"{record['method']} {record['path']} -> {status or response.get('error')}: {detail}")
        elif "event: error" in ((response.get("body") or {}).get("text") or ""):
            problems.append(f"{record['method']} {record['path']} -> stream error event")
    log = (run_dir / "kronk.log").read_text(errors="replace") if (run_dir / "kronk.log").exists() else ""
    for line in log.splitlines():
        if re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line):
            problems.append("kronk.log: " + line.strip()[:300])
    return problems


def wait_for_tasks(run_dir: Path, since: int) -> None:
    """Open WebUI sends its background tasks (title, tags, follow-ups) after the reply; let them finish."""
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while time.monotonic() < deadline:
        records = [json.loads(p.read_text()) for p in sorted((run_dir / "capture").glob("*.json"))]
        posts = [r for r in records[since:] if r["method"] == "POST"]
        titled = any("title" in json.dumps(r.get("body") or {}).lower() for r in posts)
        idle = _kronk_idle(os.environ["KRONK_E2E_DIRECT_URL"])
        if titled and idle:
            return
        time.sleep(3)


def _kronk_idle(url: str) -> bool:
    """No request in flight at Kronk (its /metrics gauge), so the background tasks are done."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return False
    for line in text.splitlines():
        busy_gauge = line.startswith(("kronk_slots_active", "kronk_requests_queued", "kronk_streams_active"))
        if busy_gauge and float(line.rsplit(" ", 1)[-1]) > 0:
            return False
    return True


def run() -> str:
    run_dir = Path(os.environ["KRONK_E2E_RUN"])
    kronk_url = os.environ["KRONK_E2E_URL"]
    model = served_model(os.environ["KRONK_E2E_DIRECT_URL"])
    with open_webui(run_dir, kronk_url) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", loopback_only)
        page = context.new_page()
        shot = lambda name: page.screenshot(path=str(run_dir / f"openwebui-{name}.png"))
        try:
            page.goto(url, wait_until="load", timeout=120_000)  # websockets keep it from going network-idle
            page.locator("#chat-input").wait_for(timeout=120_000)
            page.wait_for_timeout(2000)
            dismiss_dialogs(page)
            shot("1-loaded")
            pick_model(page, model, shot)
            before = len(list((run_dir / "capture").glob("*.json")))
            chat_input = page.locator("#chat-input")
            chat_input.click()
            chat_input.fill(PROMPT) if chat_input.evaluate("e => e.tagName") == "TEXTAREA" else page.keyboard.type(PROMPT)
            shot("3-typed")
            page.keyboard.press("Enter")
            reply = wait_for_reply(page)
            shot("4-reply")
            wait_for_tasks(run_dir, before)
            page.wait_for_timeout(1000)
            shot("5-after-tasks")
            if errors := error_toasts(page):
                raise Fail("error toast after the reply: " + " | ".join(errors))
        except (Fail, PlaywrightTimeout):
            shot("failed")
            raise
        finally:
            browser.close()
    if problems := kronk_problems(run_dir):
        raise Fail(f"reply {reply[:80]!r} shown, but Kronk reported: " + " || ".join(problems[:5]))
    return reply


def main() -> int:
    try:
        reply = run()
    except Fail as exc:
        print(f"FAIL openwebui: {exc}")
        return 1
    except PlaywrightTimeout as exc:
        print(f"FAIL openwebui: timed out in the page: {str(exc).splitlines()[0]}")
        return 1
    print(f"PASS openwebui: {' '.join(reply.split())[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
