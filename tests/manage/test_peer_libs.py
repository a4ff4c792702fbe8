"""`kronk libs --from URL`: a llama.cpp build copied from a real Kronk server on 127.0.0.1.

The sender runs on a copy of the real libs in its own KRONK_HOME (never the shared
~/.kronk/libs); the receiver installs into another KRONK_HOME. A faithful copy passes
the sha256 and ABI checks; a tampered file or a build the ABI check rejects leaves the
receiver's old build as it was; another platform or missing CPU features are refused
before any download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from kronk import errors as E
from kronk.cli.main import cli
from kronk.manage.libs.cpu import ISA_FLAGS, host_cpu_features
from kronk.manage.libs.install import file_digests, read_record
from kronk.manage.libs.manager import LibsManager
from kronk.manage.libs_peer import install_from_peer
from kronk.manage.peer_client import PeerClient
from tests.manage.peer_support import KronkServer, mint

PLATFORM = ("linux", "x64", "cpu")


@dataclass
class Sender:
    server: KronkServer
    token: str

    @property
    def libs(self) -> Path:
        return self.server.home.joinpath("libs", *PLATFORM)

    def edit_record(self, **changes: object) -> None:
        path = self.libs / "version.json"
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data))

    def replace_file(self, name: str, data: bytes) -> None:
        """New bytes under a file's name (a new inode: a process that mapped the old one keeps it)."""
        path = self.libs / name
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, path)


@pytest.fixture
def sender(tmp_path: Path, lib_dir: Path) -> Iterator[Sender]:
    home = tmp_path / "sender"
    shutil.copytree(lib_dir, home.joinpath("libs", *PLATFORM), symlinks=True)
    assert read_record(home.joinpath("libs", *PLATFORM)) is not None
    token = mint(home)
    server = KronkServer(home, own_libs=True)
    try:
        yield Sender(server.start(), token)
    finally:
        server.stop()


def _receiver(home: Path, **env: str) -> LibsManager:
    return LibsManager(home, environ={"KRONK_HOME": str(home), "KRONK_PROCESSOR": "cpu",
                                      "PATH": os.environ.get("PATH", ""), **env})


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_libs_from_a_peer_install_verified_and_abi_checked(sender: Sender, libs_env: Path) -> None:
    result = CliRunner().invoke(cli, ["libs", "--from", sender.server.url, "--from-token", sender.token, "--json"])
    assert result.exit_code == 0, result.output
    installed = json.loads(result.stdout)
    assert installed["source"] == "peer" and installed["build"] == read_record(sender.libs).build
    target = libs_env.joinpath("libs", *PLATFORM)
    assert file_digests(target) == read_record(sender.libs).files
    assert os.readlink(target / "libllama.so") == os.readlink(sender.libs / "libllama.so")
    assert set(installed["cpu_features"]) == host_cpu_features()
    assert read_record(target).cpu_features == tuple(sorted(host_cpu_features()))
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".cpu.staging")]


def test_a_tampered_file_or_a_failed_abi_check_leaves_the_old_build(sender: Sender, tmp_path: Path) -> None:
    home = tmp_path / "receiver"
    manager = _receiver(home)
    install_from_peer(manager, PeerClient(sender.server.url, sender.token))
    target = home.joinpath("libs", *PLATFORM)
    before = _snapshot(target)

    sender.replace_file("libggml-base.so.0.26.0", (sender.libs / "libggml-base.so.0.26.0").read_bytes() + b"x")
    with pytest.raises(E.ChecksumError, match="libggml-base"):
        install_from_peer(manager, PeerClient(sender.server.url, sender.token))
    assert _snapshot(target) == before

    junk = b"\x7fELF not really a library"
    sender.replace_file("libggml-base.so.0.26.0", junk)
    files = dict(read_record(sender.libs).files)
    files["libggml-base.so.0.26.0"] = hashlib.sha256(junk).hexdigest()
    sender.edit_record(files=files)
    with pytest.raises(E.LibraryNotFoundError, match="cannot load the libraries in .*staging"):
        install_from_peer(manager, PeerClient(sender.server.url, sender.token))  # the ABI check's subprocess
    assert _snapshot(target) == before
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".cpu.")] == [".cpu.lock"]


def test_another_platform_or_missing_cpu_features_are_refused_before_any_download(
        sender: Sender, tmp_path: Path) -> None:
    with pytest.raises(E.LibsInstallError, match="for linux/x64/cpu; this machine is linux/x64/cuda"):
        install_from_peer(_receiver(tmp_path / "gpu", KRONK_PROCESSOR="cuda"),
                          PeerClient(sender.server.url, sender.token))
    lacking = sorted(ISA_FLAGS - host_cpu_features())[0]
    sender.edit_record(cpu_features=sorted(host_cpu_features() | {lacking}))
    with pytest.raises(E.LibsInstallError, match=f"uses {lacking}, which this CPU lacks"):
        install_from_peer(_receiver(tmp_path / "old-cpu"), PeerClient(sender.server.url, sender.token))
    assert not (tmp_path / "old-cpu" / "libs").exists()
    user = mint(sender.server.home, is_admin=False)
    answer = requests.get(f"{sender.server.url}/v1/kronk/peer/libs", headers={"Authorization": f"Bearer {user}"},
                          timeout=10)
    assert answer.status_code == 403


def test_a_native_build_records_the_isa_flags_of_the_cpu_it_was_built_on() -> None:
    from kronk.manage.libs.cpu import missing_features, parse_cpuinfo
    from kronk.manage.libs.manager import _native_features

    x86 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma hypervisor avx512f ht\n\nprocessor\t: 1\nflags : sse\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve i8mm cpuid\n"
    assert parse_cpuinfo(x86) == {"sse", "sse2", "avx", "avx2", "fma", "avx512f"}
    assert parse_cpuinfo(arm) == {"fp", "asimd", "aes", "sve", "i8mm"}
    assert missing_features(["avx2", "avx512f", "hypervisor"], frozenset({"avx2"})) == ["avx512f"]
    assert _native_features("sdist") == _native_features("source") == tuple(sorted(host_cpu_features()))
    assert _native_features("release") is None and _native_features("dir") is None
