"""Installing the real b11434 libraries: from a release archive over HTTP, from a folder;
corrupt or interrupted installs leave the previous install working."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kronk.errors import ConfigError, LibraryNotFoundError, LibsInstallError
from kronk.manage.libs import LibsManager, Platform, ProgressEvent, Stage
from kronk.manage.libs import install as inst
from tests.manage import libs_support as support

CPU = Platform("linux", "x64", "cpu")
pytestmark = [pytest.mark.requires_libs, pytest.mark.usefixtures("libs_env")]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: file contents' sha256, or the symlink's target."""
    result = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            result[key] = f"-> {os.readlink(path)}"
        else:
            result[key] = support.sha256(path) if path.is_file() else "/"
    return result


def _leftovers(home: Path) -> list[str]:
    """Staging/old folders beside installs and temp work folders: all must be gone after any run."""
    names = [p.name for p in (home / "libs").rglob(".*") if p.is_dir()]
    tmp = home / "cache" / "tmp"
    return names + ([p.name for p in tmp.iterdir()] if tmp.exists() else [])


def _publish(root: Path, prefix: str, build: int, asset: str, data: bytes, sha: str | None = None) -> None:
    path = support.release_path(root, prefix, build, asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if sha is not None:
        (path.parent / (asset + ".sha256")).write_text(f"{sha}  {asset}\n")


@pytest.fixture()
def installed(libs_env: Path, libs_real_bin: Path) -> Path:
    """A working install copied from the real build: the 'previous install' to protect."""
    return LibsManager().install(from_dir=libs_real_bin, platform=CPU).path


# --- release archives ----------------------------------------------------------------


def test_release_archive_installs_real_libs(libs_release: str, libs_env: Path) -> None:
    events: list[ProgressEvent] = []
    manager = LibsManager()
    record = manager.install(source="release", with_tools=True, progress=events.append)

    target = libs_env / "libs" / "linux" / "x64" / "cpu"
    assert record.path == target and record.platform == CPU
    assert (record.build, record.source, record.source_tree) == (11434, "release", None)
    assert (target / "libllama.so").is_symlink() and os.readlink(target / "libllama.so") == "libllama.so.0"
    assert (target / "bin" / support.TOOL).is_file() and os.access(target / "bin" / support.TOOL, os.X_OK)
    on_disk = json.loads((target / "version.json").read_text())
    assert on_disk == record.version_json()
    assert set(on_disk) == {"build", "processor", "os", "arch", "source", "installed_at", "source_tree", "files",
                            "cpu_features"}
    assert on_disk["cpu_features"] is None  # a release archive is portable: it needs no particular CPU
    assert on_disk["files"]["libllama.so.0.6.0"] == support.sha256(support.REAL_BUILD_BIN / "libllama.so.0.6.0")
    assert _leftovers(libs_env) == []

    stages = [e.stage for e in events]
    assert stages[0] is Stage.ATTEMPT and stages[-1] is Stage.DONE
    assert {Stage.DOWNLOAD, Stage.EXTRACT, Stage.STAGE, Stage.VERIFY, Stage.INSTALL} <= set(stages)
    last_download = [e for e in events if e.stage is Stage.DOWNLOAD and e.done is not None][-1]
    assert last_download.done == last_download.total > 1_000_000

    # The binding's own loader finds and accepts it.
    from kronk._native import abi
    from kronk._native.loader import find_lib_dir

    assert find_lib_dir(environ={"KRONK_HOME": str(libs_env), "KRONK_PROCESSOR": "cpu"}) == target
    abi.verify_lib_dir(target)
    assert manager.current() == record and manager.list_installs() == [record]


def test_a_release_download_cut_short_resumes(libs_release: str, libs_release_archive: Path,
                                              libs_server: support.LocalServer) -> None:
    """The connection drops halfway through the archive: the one downloader asks for the rest."""
    path = f"{urlsplit(libs_release).path}/releases/download/b{support.REAL_BUILD}/{support.linux_asset()}"
    libs_server.cuts[path] = 1
    record = LibsManager().install(source="release")
    assert record.source == "release" and (record.path / "libllama.so").exists()
    half = libs_release_archive.stat().st_size // 2
    assert [asked for served, asked in libs_server.ranges if served == path] == [f"bytes={half}-"]


@pytest.mark.parametrize("prefix", ["", "llama-b11434"])
def test_flat_and_folder_archive_layouts(prefix: str, libs_env: Path, libs_server: support.LocalServer,
                                         libs_server_root: Path, libs_real_bin: Path,
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    archive = support.make_tarball(tmp_path / "a.tar.gz", prefix, support.real_lib_names(include_tool=False))
    base = f"layout{prefix or '-flat'}"
    _publish(libs_server_root, base, 11434, support.linux_asset(), archive.read_bytes(), support.sha256(archive))
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/{base}")
    record = LibsManager().install(source="release")
    assert (record.path / "libmtmd.so").exists() and not record.has_tools


def test_published_sha256_is_checked(installed: Path, libs_server: support.LocalServer,
                                     libs_server_root: Path, libs_release_archive: Path, libs_env: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(installed)
    _publish(libs_server_root, "badsha", 11434, support.linux_asset(), libs_release_archive.read_bytes(), "0" * 64)
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/badsha")
    with pytest.raises(LibsInstallError, match="sha256"):
        LibsManager().install(source="release", upgrade=True)
    assert _snapshot(installed) == before
    assert _leftovers(libs_env) == []
    from kronk._native import abi

    abi.verify_lib_dir(installed)  # the previous install still loads


def test_truncated_archive_is_rejected(installed: Path, libs_server: support.LocalServer,
                                       libs_server_root: Path, libs_release_archive: Path, libs_env: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(installed)
    data = libs_release_archive.read_bytes()
    _publish(libs_server_root, "truncated", 11434, support.linux_asset(), data[: len(data) // 2])
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/truncated")
    with pytest.raises(LibsInstallError, match="corrupt or truncated"):
        LibsManager().install(source="release", upgrade=True)
    assert _snapshot(installed) == before
    assert _leftovers(libs_env) == []


def test_archive_missing_a_library_fails_verification(installed: Path, libs_server: support.LocalServer,
                                                      libs_server_root: Path, libs_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = _snapshot(installed)
    archive = support.make_tarball(tmp_path / "a.tar.gz", "build/bin", support.real_lib_names(skip=["libmtmd"]))
    _publish(libs_server_root, "nomtmd", 11434, support.linux_asset(), archive.read_bytes())
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/nomtmd")
    with pytest.raises(LibsInstallError, match="missing libmtmd.so"):
        LibsManager().install(source="release", upgrade=True)
    assert _snapshot(installed) == before
    assert _leftovers(libs_env) == []


def test_other_build_fails_the_abi_check(libs_env: Path, libs_server: support.LocalServer, libs_server_root: Path,
                                         libs_release_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same files published as b11435: the binding was not checked against that build."""
    _publish(libs_server_root, "other", 11435, support.linux_asset(11435), libs_release_archive.read_bytes())
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/other")
    with pytest.raises(LibsInstallError, match="b11435"):
        LibsManager().install("b11435", source="release")
    assert LibsManager().installed(CPU) is None
    assert _leftovers(libs_env) == []


def test_missing_build_reports_404(libs_env: Path, libs_server: support.LocalServer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/nothing-here")
    with pytest.raises(LibsInstallError, match="404"):
        LibsManager().install("b1", source="release")


def test_unknown_version_fails_before_any_request(libs_env: Path, libs_server: support.LocalServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", libs_server.url)
    seen = len(libs_server.requests)
    with pytest.raises(ConfigError, match="foo"):
        LibsManager().install("foo")
    assert len(libs_server.requests) == seen


def test_every_source_failing_gives_one_summary(libs_env: Path, libs_server: support.LocalServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/empty")
    failed: list[str | None] = []
    with pytest.raises(LibsInstallError) as info:
        LibsManager().install("b2", progress=lambda e: failed.append(e.source) if e.stage is Stage.FAILED else None)
    message = str(info.value)
    assert failed == ["release", "sdist", "source"]
    assert "release:" in message and "sdist:" in message and "source:" in message and "404" in message
    assert "\n" not in message


# --- interruptions -------------------------------------------------------------------


class _Abort:
    """A progress callback that raises KeyboardInterrupt at a stage, as Ctrl-C would."""

    def __init__(self, stage: Stage, after: int = 0) -> None:
        self.stage, self.after, self.seen = stage, after, 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage is self.stage:
            self.seen += 1
            if self.seen > self.after:
                raise KeyboardInterrupt


@pytest.mark.parametrize("stage, after", [(Stage.DOWNLOAD, 3), (Stage.EXTRACT, 0), (Stage.VERIFY, 0),
                                          (Stage.INSTALL, 0)])
def test_interrupted_install_leaves_the_old_one(stage: Stage, after: int, installed: Path,
                                                libs_release: str, libs_env: Path) -> None:
    before = _snapshot(installed)
    with pytest.raises(KeyboardInterrupt):
        LibsManager().install(source="release", upgrade=True, progress=_Abort(stage, after))
    assert _snapshot(installed) == before
    assert _leftovers(libs_env) == []
    record = LibsManager().install(source="release", upgrade=True)  # and the next run works
    assert record.source == "release"


def test_crash_between_the_renames_is_repaired(installed: Path, libs_env: Path) -> None:
    target = installed
    before = _snapshot(target)
    os.rename(target, target.with_name(".cpu.old-deadbeef"))  # as if killed after the first rename
    (target.parent / ".cpu.staging-xyz").mkdir()
    assert LibsManager().install(platform=CPU).source == "dir"  # already installed, after recovery
    assert _snapshot(target) == before
    assert _leftovers(libs_env) == []


def test_a_second_installer_is_refused(installed: Path, libs_real_bin: Path) -> None:
    with inst.install_lock(installed), pytest.raises(LibsInstallError, match="another"):
        LibsManager().install(from_dir=libs_real_bin, platform=CPU)


# --- folders, idempotence, list, remove ----------------------------------------------------------


def test_from_dir_then_idempotent_then_upgrade(libs_env: Path, libs_real_bin: Path) -> None:
    manager = LibsManager()
    first = manager.install(from_dir=libs_real_bin)
    assert (first.source, first.build, first.has_tools) == ("dir", 11434, False)
    assert manager.install() == first  # nothing to do
    assert manager.install("b11434") == first
    again = manager.install(from_dir=first.path, upgrade=True)  # copying an install onto itself works
    assert again.installed_at != first.installed_at and again.files == first.files
    tools = manager.install(from_dir=libs_real_bin, with_tools=True)
    assert tools.has_tools and (tools.path / "bin" / "llama-server").exists()
    assert manager.install(with_tools=True) == tools


def test_from_dir_without_libraries(libs_env: Path, tmp_path: Path) -> None:
    with pytest.raises(LibsInstallError, match="holds no libllama.so"):
        LibsManager().install(from_dir=tmp_path)


def test_list_and_remove(libs_env: Path, libs_real_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRONK_PROCESSOR")
    manager = LibsManager()
    cpu = manager.install(from_dir=libs_real_bin, platform=CPU)
    vulkan = manager.install(from_dir=libs_real_bin, platform=Platform("linux", "x64", "vulkan"))
    assert manager.list_installs() == [cpu, vulkan]
    assert manager.current() == vulkan  # the loader prefers a GPU build when no processor is forced
    assert manager.remove(vulkan.platform) == vulkan
    assert not vulkan.path.exists() and manager.list_installs() == [cpu]
    with pytest.raises(LibraryNotFoundError):
        manager.remove(vulkan.platform)
    assert _leftovers(libs_env) == []


def test_kronk_lib_path_is_used_as_is(libs_env: Path, libs_real_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIB_PATH", str(libs_real_bin))
    manager = LibsManager()
    record = manager.install()
    assert (record.path, record.source, record.build) == (libs_real_bin, "external", None)
    assert manager.current() == record and manager.list_installs() == [record]
    with pytest.raises(ConfigError, match="KRONK_LIB_PATH"):
        manager.install(upgrade=True)
    with pytest.raises(ConfigError, match="KRONK_LIB_PATH"):
        manager.remove()
    assert not list(libs_real_bin.parent.glob(f".{libs_real_bin.name}.*"))  # no lock or staging beside it


def test_kronk_lib_path_can_be_a_managed_folder(libs_env: Path, libs_real_bin: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_LIB_PATH", str(tmp_path / "mylibs"))
    record = LibsManager().install(from_dir=libs_real_bin)
    assert record.path == tmp_path / "mylibs" and (tmp_path / "mylibs" / "version.json").exists()
    assert not (libs_env / "libs").exists()


def test_cross_platform_zip_install(libs_env: Path, libs_server: support.LocalServer, libs_server_root: Path,
                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A Windows archive installs on Linux (no ABI check can run here); layout and zip handling only."""
    members = {f"{name}.dll": f"dll {name}".encode() for name in ("llama", "ggml", "ggml-base", "mtmd", "ggml-cpu")}
    members["llama-server.exe"] = b"MZ"
    archive = support.make_zip(tmp_path / "w.zip", members)
    asset = "llama-b11434-bin-win-cpu-x64.zip"
    _publish(libs_server_root, "win", 11434, asset, archive.read_bytes(), support.sha256(archive))
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/win")
    windows = Platform("windows", "x64", "cpu")
    events: list[ProgressEvent] = []
    record = LibsManager().install(source="release", platform=windows, with_tools=True, progress=events.append)
    assert record.path == libs_env / "libs" / "windows" / "x64" / "cpu"
    assert sorted(record.files) == ["bin/ggml-base.dll", "bin/ggml-cpu.dll", "bin/ggml.dll", "bin/llama-server.exe",
                                    "bin/llama.dll", "bin/mtmd.dll", "ggml-base.dll", "ggml-cpu.dll", "ggml.dll",
                                    "llama.dll", "mtmd.dll"]
    assert any("ABI check skipped" in e.message for e in events)


def test_windows_cuda_falls_back_to_the_next_archive_name_and_brings_its_runtime(
        libs_env: Path, libs_server: support.LocalServer, libs_server_root: Path,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    members = {f"{name}.dll": b"dll" for name in ("llama", "ggml", "ggml-base", "mtmd", "ggml-cuda")}
    archive = support.make_zip(tmp_path / "c.zip", members)
    runtime = support.make_zip(tmp_path / "r.zip", {"cudart64_12.dll": b"rt", "cublas64_12.dll": b"blas"})
    _publish(libs_server_root, "wincuda", 11434, "llama-b11434-bin-win-cuda-12.4-x64.zip", archive.read_bytes())
    _publish(libs_server_root, "wincuda", 11434, "cudart-llama-bin-win-cuda-12.4-x64.zip", runtime.read_bytes())
    monkeypatch.setenv("KRONK_LIBS_BASE_URL", f"{libs_server.url}/wincuda")
    record = LibsManager().install(source="release", platform=Platform("windows", "x64", "cuda"))
    assert {"cudart64_12.dll", "cublas64_12.dll", "ggml-cuda.dll"} <= set(record.files)
    assert any(path.endswith("win-cuda-13.3-x64.zip") for path in libs_server.requests)  # tried first
