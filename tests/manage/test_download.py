"""The one downloader, on its own: 404s, the caller's access hint, file:// URLs, one-line
failures and the progress throttle. (Resume, retries and sha256 checks through the
model, libs and sdist paths are in test_pull, test_libs_install and test_libs_sources.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kronk.errors import ChecksumError, DownloadError
from kronk.manage.download import AssetMissingError, Downloader, throttled
from tests.manage.fakehub import FakeHub, Served, sha256


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def test_a_plain_download_reports_its_progress_and_lands_verified(hub: FakeHub, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    hub.plain["file.bin"] = Served(data)
    seen: list[tuple[int, int | None]] = []
    out = tmp_path / "out"
    result = Downloader().fetch(f"{hub.url}/files/file.bin", out / "file.bin", sha256=sha256(data),
                                on_bytes=lambda done, total: seen.append((done, total)))
    assert (out / "file.bin").read_bytes() == data and result.sha256 == sha256(data)
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert [p.name for p in out.iterdir()] == ["file.bin"]
    asked = hub.gets("/files/file.bin")[0].headers
    assert asked["Accept-Encoding"] == "identity"  # the bytes whose sha256 was published


def test_404_is_an_asset_missing_error(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(AssetMissingError, match="HTTP 404") as failure:
        Downloader().fetch(f"{hub.url}/files/nothing.bin", tmp_path / "out" / "nothing.bin")
    assert failure.value.error_code == "asset_missing"
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("status", [401, 403])
def test_access_denied_says_what_the_caller_hints(hub: FakeHub, tmp_path: Path, status: int) -> None:
    hub.plain["private.bin"] = Served(b"secret", status=status)
    url = f"{hub.url}/files/private.bin"
    with pytest.raises(DownloadError) as failure:
        Downloader().fetch(url, tmp_path / "p.bin", denied_hint="put the mirror's credentials in ~/.netrc")
    assert str(failure.value) == f"HTTP {status} for {url} (put the mirror's credentials in ~/.netrc)"
    with pytest.raises(DownloadError) as failure:
        Downloader().fetch(url, tmp_path / "p.bin")
    assert str(failure.value) == f"HTTP {status} for {url}"  # no advice about a token nobody asked for


def test_an_unreachable_host_is_one_short_line(tmp_path: Path) -> None:
    url = _closed_port_url()
    with pytest.raises(DownloadError) as failure:
        Downloader(retries=1, backoff=0).fetch(url, tmp_path / "file.bin")
    message = str(failure.value)
    assert message.startswith(f"download of {url} failed after 2 attempts: ")
    assert "\n" not in message and len(message) < 300 and "HTTPConnection" not in message


def test_file_urls_take_the_same_verified_path(tmp_path: Path) -> None:
    source = tmp_path / "index" / "pkg-1.0.tar.gz"
    source.parent.mkdir()
    source.write_bytes(b"sdist bytes")
    dest = tmp_path / "out" / "pkg-1.0.tar.gz"
    with pytest.raises(ChecksumError, match="does not match"):
        Downloader().fetch(source.as_uri(), dest, sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []  # neither the file nor a .part
    result = Downloader().fetch(source.as_uri(), dest, sha256=sha256(b"sdist bytes"))
    assert dest.read_bytes() == b"sdist bytes" and result.size == len(b"sdist bytes")
    with pytest.raises(DownloadError, match="cannot read"):
        Downloader().fetch((tmp_path / "missing.tar.gz").as_uri(), tmp_path / "out" / "missing.tar.gz")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["pkg-1.0.tar.gz"]


def test_progress_is_throttled_to_about_200_calls_and_keeps_the_end() -> None:
    calls: list[tuple[int, int | None]] = []
    report = throttled(lambda done, total: calls.append((done, total)))
    total = 1 << 30
    for done in range(0, total + 1, 1 << 16):
        report(done, total)
    report(total, total)  # the end is said once
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert len(calls) <= 202 and calls.count((total, total)) == 1
    report(5, total)  # a restart from zero is shown at once
    assert calls[-1] == (5, total)
