"""`LibsManager`: install, list and remove llama.cpp builds under `$KRONK_HOME/libs/`.

The one entry point for the CLI and the server's management API. When no source is
named the sources are tried in order (release archive, PyPI sdist build, GitHub tag
build) and, if all fail, one LibsInstallError says what each attempt ran into.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import requests

from kronk.errors import ConfigError, KronkError, LibraryNotFoundError, LibsInstallError
from kronk.manage.endpoints import make_session
from kronk.manage.libs import install as inst
from kronk.manage.libs import sources
from kronk.manage.libs.assets import Combination, combinations
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage, ignore_progress
from kronk.manage.libs.install import InstallRecord
from kronk.manage.libs.pin import Pin, load_pin, parse_build
from kronk.manage.libs.platform import ARCHES, OSES, PROCESSORS, Platform, detect, host_os
from kronk.paths import kronk_home

logger = logging.getLogger("kronk.libs")

LIB_PATH_ENV = "KRONK_LIB_PATH"


class LibsManager:
    """Installs of llama.cpp under one Kronk home.

    `environ` (default: a copy of os.environ, taken now) supplies KRONK_OS/ARCH/PROCESSOR,
    KRONK_LIB_PATH, KRONK_LIBS_BASE_URL, PATH and pip's settings. Every method blocks
    (network, disk, compilers): async callers run them with `asyncio.to_thread`.
    """

    def __init__(self, home: Path | None = None, *, environ: Mapping[str, str] | None = None,
                 session: requests.Session | None = None) -> None:
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.home = Path(home) if home is not None else _home_from(self.environ)
        self.pin: Pin = load_pin()
        self._session = session

    # --- queries -------------------------------------------------------------------

    def detect(self) -> Platform:
        """This machine's platform, with the KRONK_OS/ARCH/PROCESSOR overrides applied."""
        return detect(self.environ)

    def combinations(self) -> list[Combination]:
        return combinations()

    @property
    def libs_root(self) -> Path:
        return self.home / "libs"

    def lib_path_override(self) -> Path | None:
        value = self.environ.get(LIB_PATH_ENV)
        return Path(value).expanduser() if value else None

    def target_dir(self, platform: Platform) -> Path:
        """Where `platform`'s install lives: KRONK_LIB_PATH when set, else libs/<os>/<arch>/<processor>."""
        override = self.lib_path_override()
        if override is not None:
            return override
        return self.libs_root.joinpath(*platform.parts())

    def installed(self, platform: Platform | None = None) -> InstallRecord | None:
        """The install for `platform` (default: detected), None when there is none."""
        return self._record_at(self.target_dir(platform or self.detect()), platform)

    def list_installs(self) -> list[InstallRecord]:
        """Every install under libs/, plus KRONK_LIB_PATH when it points elsewhere."""
        records: list[InstallRecord] = []
        if self.libs_root.is_dir():
            for os_name in OSES:
                for arch in ARCHES:
                    for processor in PROCESSORS:
                        folder = self.libs_root / os_name / arch / processor
                        try:
                            record = inst.read_record(folder)
                        except KronkError as exc:
                            logger.warning("skipping %s: %s", folder, exc)
                            continue
                        if record is not None:
                            records.append(record)
        override = self.lib_path_override()
        if override is not None and not any(r.path == override for r in records):
            record = self._record_at(override, None)
            if record is not None:
                records.append(record)
        return records

    def current(self) -> InstallRecord | None:
        """The install the native loader would open (same search order), None if none."""
        from kronk._native.loader import find_lib_dir

        try:
            folder = find_lib_dir(environ={**self.environ, "KRONK_HOME": str(self.home)})
        except LibraryNotFoundError:
            return None
        return self._record_at(folder, None)

    # --- changes -------------------------------------------------------------------

    def install(self, version: str | int | None = None, source: str | None = None, *, with_tools: bool = False,
                upgrade: bool = False, platform: Platform | None = None, from_dir: Path | None = None,
                source_tree: Path | None = None, progress: ProgressCallback | None = None) -> InstallRecord:
        """Install build `version` (default: the pin) for `platform` (default: detected).

        Returns the existing install untouched when it already satisfies the request
        (same build if one was named, tools if asked) unless `upgrade` or `from_dir`.
        """
        progress = progress or ignore_progress
        build = parse_build(version) if version is not None else None
        order = self._plan(source, from_dir, source_tree)
        platform = platform or self.detect()
        target = self.target_dir(platform)
        external = self._external_at(target, platform)
        if external is not None:  # used as is: never locked, written or replaced
            if upgrade or build is not None or from_dir is not None or source is not None:
                raise ConfigError(f"{LIB_PATH_ENV}={target} holds libraries Kronk does not manage; "
                                  f"unset {LIB_PATH_ENV} to install")
            return external
        with inst.install_lock(target):
            inst.recover(target)
            existing = inst.read_record(target)
            if existing is not None and not upgrade and from_dir is None \
                    and (build is None or existing.build == build) and (existing.has_tools or not with_tools):
                progress(ProgressEvent(Stage.DONE, f"b{existing.build} is already installed in {target}"))
                return existing
            wanted = build if build is not None else self.pin.build
            failures: list[str] = []
            for name in order:
                progress(ProgressEvent(Stage.ATTEMPT, f"installing b{wanted} for {platform} from {name}",
                                       source=name))
                try:
                    return self._install_from(name, platform, target, build, wanted, with_tools=with_tools,
                                              from_dir=from_dir, source_tree=source_tree, progress=progress)
                except (KronkError, OSError, subprocess.SubprocessError) as exc:
                    reason = str(exc) or type(exc).__name__
                    failures.append(f"{name}: {reason}")
                    progress(ProgressEvent(Stage.FAILED, reason, source=name))
            raise LibsInstallError(f"could not install llama.cpp b{wanted} for {platform} — " + "; ".join(failures))

    def remove(self, platform: Platform | None = None) -> InstallRecord:
        """Delete the install for `platform` (default: detected) and return what was removed."""
        platform = platform or self.detect()
        target = self.target_dir(platform)
        if self._external_at(target, platform) is not None:
            raise ConfigError(f"{LIB_PATH_ENV}={target} holds libraries Kronk does not manage; not removing")
        with inst.install_lock(target):
            inst.recover(target)
            record = inst.read_record(target)
            if record is None:
                raise LibraryNotFoundError(f"no llama.cpp libraries are installed for {platform} ({target})")
            try:
                inst.remove_tree(target)
            except OSError as exc:
                raise LibsInstallError(f"cannot remove {target}: {exc.strerror or exc}") from exc
        return record

    # --- internals -----------------------------------------------------------------

    def _session_or_new(self) -> requests.Session:
        if self._session is None:
            self._session = make_session()
        return self._session

    @staticmethod
    def _plan(source: str | None, from_dir: Path | None, source_tree: Path | None) -> tuple[str, ...]:
        """The sources to try, in order; bad combinations are ConfigErrors before any work."""
        if source is not None and source not in sources.SOURCES:
            raise ConfigError(f"unknown source {source!r}: expected one of {', '.join(sources.SOURCES)}")
        if from_dir is not None:
            if source not in (None, "dir"):
                raise ConfigError(f"--from-dir cannot be combined with --source {source}")
            return ("dir",)
        if source == "dir":
            raise ConfigError("--source dir needs --from-dir PATH")
        if source_tree is not None:
            if source not in (None, "source"):
                raise ConfigError(f"--source-tree cannot be combined with --source {source}")
            return ("source",)
        return (source,) if source is not None else sources.AUTO_ORDER

    def _record_at(self, folder: Path, platform: Platform | None) -> InstallRecord | None:
        """The managed install in `folder`, or the external KRONK_LIB_PATH one, or None."""
        return inst.read_record(folder) or self._external_at(folder, platform)

    def _external_at(self, folder: Path, platform: Platform | None) -> InstallRecord | None:
        """KRONK_LIB_PATH holding libraries but no version.json: someone else's build, used as is."""
        if folder != self.lib_path_override() or (folder / inst.RECORD_NAME).exists():
            return None
        if not (folder / inst.library_filename("llama", host_os())).exists():
            return None
        return InstallRecord(path=folder, platform=platform or self.detect(), build=None, source="external")

    def _install_from(self, name: str, platform: Platform, target: Path, build: int | None, wanted: int, *,
                      with_tools: bool, from_dir: Path | None, source_tree: Path | None,
                      progress: ProgressCallback) -> InstallRecord:
        cache = self.home / "cache"
        (cache / "tmp").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"libs-{name}-", dir=cache / "tmp"))
        staging: Path | None = None
        try:
            ctx = sources.Context(cache=cache, environ=self.environ, session=self._session_or_new(),
                                  progress=progress, pin=self.pin)
            if name == "release":
                payload = sources.from_release(ctx, platform, wanted, work)
            elif name == "sdist":
                payload = sources.from_sdist(ctx, platform, wanted, with_tools=with_tools)
            elif name == "source":
                payload = sources.from_source(ctx, platform, wanted, work, with_tools=with_tools, tree=source_tree)
            else:
                assert from_dir is not None
                payload = sources.from_dir(Path(from_dir).expanduser(), platform, build, self.pin.build)
            staging = inst.staging_dir(target)
            progress(ProgressEvent(Stage.STAGE, f"copying libraries from {payload.folder}", source=name))
            files = inst.stage_payload(payload.folder, staging, platform, with_tools=with_tools)
            record = InstallRecord(path=staging, platform=platform, build=payload.build, source=name,
                                   installed_at=inst.now_utc(),
                                   source_tree=str(payload.source_tree) if payload.source_tree else None,
                                   files=files, cpu_features=_native_features(name))
            inst.write_record(record)
            if not record.has_rpc:
                # Release archives may ship without ggml-rpc; builds from source always have it.
                progress(ProgressEvent(Stage.STAGE, f"this b{payload.build} build has no RPC backend: "
                                       "`kronk rpc-server` and --rpc need a source build (--source sdist)",
                                       source=name))
            progress(ProgressEvent(Stage.VERIFY, f"checking the libraries of b{payload.build}", source=name))
            if not inst.verify_staged(staging, platform):
                progress(ProgressEvent(Stage.VERIFY, f"ABI check skipped: {platform} libraries cannot be "
                                                     "loaded on this machine", source=name))
            progress(ProgressEvent(Stage.INSTALL, f"installing into {target}", source=name))
            inst.swap_in(staging, target)
            staging = None
            record = dataclasses.replace(record, path=target)
            progress(ProgressEvent(Stage.DONE, f"installed b{record.build} for {platform} in {target}", source=name))
            return record
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


def _native_features(source: str) -> tuple[str, ...] | None:
    """What a build from `source` may need of the CPU: builds here use GGML_NATIVE=ON (this CPU's flags)."""
    if source not in ("sdist", "source"):
        return None
    from kronk.manage.libs.cpu import host_cpu_features

    return tuple(sorted(host_cpu_features()))


def _home_from(environ: Mapping[str, str]) -> Path:
    value = environ.get("KRONK_HOME")
    return Path(value).expanduser() if value else kronk_home()
