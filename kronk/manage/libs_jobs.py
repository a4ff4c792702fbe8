"""Libs installs as server-side jobs that outlive the page that started them.

`POST /libs/pull` streams one install to the caller that asked; if that caller goes away
the install goes on but nobody can watch it any more. Here an install is a job: it runs
in a thread, keeps every progress event, and any number of callers can follow it from
the start (`GET /libs/jobs/{id}/events`), so a browser that reloads picks it up again.
One libs job runs at a time (they share one install folder); asking for another while
one runs answers the running one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from kronk import errors as E
from kronk.http_errors import openai_error_body

log = logging.getLogger(__name__)

KEEP_FINISHED = 5
"""Finished jobs kept for late followers (the newest ones)."""


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


@dataclass
class LibsJob:
    """One install or upgrade: its request, its events so far and how it ended."""

    id: str
    action: str
    request: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    state: str = "running"
    """running, done or failed"""
    finished_at: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    """The API's error body when the job failed."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "request": self.request, "state": self.state,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "last_event": self.events[-1] if self.events else None, "events": len(self.events),
                "result": self.result, "error": self.error}

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def add_event(self, event: dict[str, Any]) -> None:
        """Record one progress event (on the event loop's thread)."""
        self.events.append(event)
        self._notify()

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.finished_at = time.time()
        if error is None:
            self.state, self.result = "done", _plain(result)
        else:
            self.state, self.error = "failed", openai_error_body(error)
        self._notify()

    async def follow(self, keepalive: float = 15.0) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every event from the first, then the live ones, then ("done", result) or ("error", body).

        ("keepalive", {}) comes after `keepalive` seconds without news (a long build step).
        """
        sent = 0
        while True:
            changed = self._changed
            while sent < len(self.events):
                yield "progress", self.events[sent]
                sent += 1
            if self.state == "done":
                yield "done", self.result or {}
                return
            if self.state == "failed":
                yield "error", self.error or {}
                return
            try:
                await asyncio.wait_for(changed.wait(), keepalive)
            except TimeoutError:
                yield "keepalive", {}


class LibsJobs:
    """The server's libs jobs (one running at a time), newest last."""

    def __init__(self) -> None:
        self._jobs: dict[str, LibsJob] = {}
        self._ids = itertools.count(1)

    def running(self) -> LibsJob | None:
        return next((job for job in self._jobs.values() if job.state == "running"), None)

    def get(self, job_id: str) -> LibsJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise E.JobNotFoundError(f"no libs job {job_id!r} (finished jobs are kept only for a while)")
        return job

    def list(self) -> list[LibsJob]:
        return list(self._jobs.values())

    def start(self, action: str, request: dict[str, Any],
              work: Callable[[Callable[[Any], None]], Any]) -> tuple[LibsJob, bool]:
        """Run `work(progress)` in a thread as a new job; (the running job, False) when one runs."""
        current = self.running()
        if current is not None:
            return current, False
        loop = asyncio.get_running_loop()
        job = LibsJob(id=f"libs-{next(self._ids)}", action=action, request=request)
        self._jobs[job.id] = job
        self._forget_old()

        def progress(event: Any) -> None:
            loop.call_soon_threadsafe(job.add_event, _plain(event))

        task = asyncio.ensure_future(asyncio.to_thread(work, progress))

        def ended(done: asyncio.Future[Any]) -> None:
            exc = None if done.cancelled() else done.exception()
            if done.cancelled():
                exc = E.LibsInstallError("the install was cancelled (the server is stopping)")
            elif exc is not None and not isinstance(exc, E.KronkError):
                log.error("libs job %s failed", job.id, exc_info=exc)
            # Progress events scheduled from the thread run before this callback (FIFO).
            loop.call_soon(job.finish, None if exc is not None else done.result(), exc)

        task.add_done_callback(ended)
        return job, True

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.state != "running"]
        for job in finished[:-KEEP_FINISHED] if len(finished) > KEEP_FINISHED else []:
            del self._jobs[job.id]
