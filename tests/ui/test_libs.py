"""Libs page: the installed build, an install job's streamed progress, and picking it up after a reload."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kronk.errors import LibsInstallError
from kronk.manage.libs import LibsManager, ProgressEvent, Stage
from tests.manage.conftest import (  # noqa: F401  (fixtures)
    libs_env,
    libs_real_bin,
    libs_release,
    libs_release_archive,
    libs_server,
    libs_server_root,
)
from tests.server.conftest import StartServer
from tests.ui.conftest import Recorded, open_ui, screenshot

pytestmark = pytest.mark.requires_libs


async def test_libs_page_installs_from_a_local_release_and_lists_it(
        libs_release: str, libs_env: Path,  # noqa: F811  (fixtures of tests/manage)
        start_server: StartServer, page: Any, page_errors: Recorded) -> None:
    """libs_release serves the real b11434 archive on 127.0.0.1 (tests/manage): no network, no build."""
    server = await start_server(preload=False)
    await open_ui(page, server, "libs")
    await page.get_by_text("linux/x64/cpu").first.wait_for()
    assert "No llama.cpp build installed yet" in await page.locator("#page-libs").inner_text()

    await page.get_by_label("Source").select_option("release")
    await page.get_by_role("button", name="Install", exact=True).click()
    await page.get_by_text("Done.").wait_for(timeout=60_000)
    log = await page.get_by_label("Install log").inner_text()
    assert "[attempt]" in log and "[download]" in log and "[done]" in log
    row = page.locator("tbody tr", has_text="linux/x64/cpu")
    await row.wait_for()
    assert "b11434" in await row.inner_text() and "release" in await row.inner_text()
    await screenshot(page, "libs")

    await row.get_by_role("button", name="Remove linux/x64/cpu").click()
    await page.locator("dialog.confirm").get_by_role("button", name="Confirm").click()
    await page.get_by_text("No llama.cpp build installed yet").wait_for()
    assert LibsManager(libs_env).list_installs() == []
    assert page_errors == []


class _HeldInstall(LibsManager):
    """The real libs manager whose install reports progress, then waits for the test to let it fail."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.release = threading.Event()

    def install(self, *args: Any, progress: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        progress(ProgressEvent(Stage.ATTEMPT, "installing b11434 from release", source="release"))
        progress(ProgressEvent(Stage.DOWNLOAD, "llama-b11434-bin-ubuntu-x64.tar.gz", 5_000_000, 20_000_000, "release"))
        assert self.release.wait(60)
        raise LibsInstallError("the mirror went away")


async def test_a_reloaded_page_picks_up_the_running_job_and_shows_its_error(
        libs_env: Path, start_server: StartServer, page: Any, page_errors: Recorded) -> None:  # noqa: F811
    server = await start_server(preload=False)
    held = _HeldInstall(libs_env)
    sub_app = next(r._app for r in server.app.router.resources() if getattr(r, "_app", None) is not None
                   and "/v1/kronk" in r.canonical)
    from kronk.manage.api import CONTEXT

    sub_app[CONTEXT].libs = held  # the page drives the server's real job routes; only the install is held
    await open_ui(page, server, "libs")
    await page.get_by_role("button", name="Install", exact=True).click()
    await page.get_by_text("4.77 MB of 19.1 MB").wait_for()

    await page.reload()
    await page.get_by_text("Picked up a job that was already running.").wait_for()
    await page.get_by_text("4.77 MB of 19.1 MB").wait_for()
    assert await page.get_by_role("button", name="Install", exact=True).is_disabled()
    held.release.set()
    alert = page.locator("#page-libs p.ops-danger[role=alert]")
    await alert.wait_for()
    assert "the mirror went away" in await alert.inner_text()
    assert await page.get_by_role("button", name="Install", exact=True).is_enabled()
    assert page_errors == []
