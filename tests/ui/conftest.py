"""Fixtures of the browser-UI tests: a real server (as in tests/server) and Debian's Chromium via Playwright.

Chromium is `/usr/bin/chromium` (scripts/setup.sh installs it; `playwright install` is never
run). It is launched headless with every background service off and a resolver that knows only
127.0.0.1, so the browser cannot reach beyond loopback either. `page` records console errors and
uncaught exceptions; tests assert `page_errors == []` after their checks.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kronk import paths
from kronk.security.admin import admin_token_path
from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window, issue_token
from tests.manage.fakehub import hub, payloads  # noqa: F401  (a fake Hugging Face on 127.0.0.1, for pulls)
from tests.require import missing
from tests.server.conftest import RunningServer, StartServer, http, server, start_server  # noqa: F401  (fixtures)

CHROMIUM = Path(os.environ.get("KRONK_TEST_CHROMIUM", "/usr/bin/chromium"))
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "bui"
_SCRATCH_SHOTS = Path(tempfile.gettempdir()) / "kronk-ui-screenshots"
_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-first-run",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's), closed after the test."""
    if not CHROMIUM.exists():
        missing("browser", f"{CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh does)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("browser", "playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Recorded(list[str]):
    """Console errors and uncaught page exceptions, as text."""


@pytest.fixture
def page_errors() -> Recorded:
    return Recorded()


@pytest.fixture
async def page(browser: Any, page_errors: Recorded) -> AsyncIterator[Any]:
    """A fresh browser context (own cookies) and page at a desktop size; errors go to `page_errors`."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    opened = await context.new_page()
    opened.set_default_timeout(20_000)
    opened.on("console", lambda msg: page_errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    opened.on("pageerror", lambda exc: page_errors.append(f"pageerror: {exc}"))
    try:
        yield opened
    finally:
        await context.close()


async def open_ui(page: Any, running: RunningServer, route: str = "chat") -> None:
    """Open the UI at `#/route` and wait until the shell has started."""
    await page.goto(f"{running.url}/#/{route}")
    await page.wait_for_selector("body[data-ready=true]")


async def screenshot(page: Any, name: str) -> None:
    """Take the screenshot docs/bui.md shows: into `docs/bui/<name>.png` when KRONK_UI_SCREENSHOTS=1
    (to refresh the docs), else into a scratch folder, so a test run leaves the tree unchanged."""
    folder = DOCS_SHOTS if os.environ.get("KRONK_UI_SCREENSHOTS") == "1" else _SCRATCH_SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"))


def admin_token() -> str:
    """The admin token a server with security on wrote at its first start (in this test's KRONK_HOME)."""
    return admin_token_path(KeyStore(paths.keys_dir())).read_text().strip()


def user_token(**endpoints: str) -> str:
    """A non-admin token with unlimited grants for the named endpoints (e.g. chat_completions=...)."""
    grants = {name.replace("_", "-"): Grant(Window.UNLIMITED) for name in endpoints}
    return issue_token(KeyStore(paths.keys_dir()), issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                       subject="tester", endpoints=grants).token


async def until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Wait until a JS expression is truthy (page.evaluate, which the page's CSP allows; wait_for_function
    would need 'unsafe-eval')."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.05)
