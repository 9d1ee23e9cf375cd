# SPDX-License-Identifier: GPL-3.0-or-later
"""The job runner: one worker thread that takes queued jobs in submission order and runs them.

For each job it loads the shot package, calls ``engine.check`` and then ``engine.run`` into a
fresh staging folder with a progress callback that records step/total/frame/ETA in the store and
raises ``Cancelled`` once the job's cancellation was asked for. On success the staging folder is
renamed to ``result/`` (atomic) and the job is ``done``; an ``EngineInputError`` makes it ``failed``
with the engine's sentence; any other exception makes it ``failed`` with "engine error: …" (the
traceback goes to the server log) — the runner itself never dies of an engine's error.

A package the server has just loaded and checked in this process (``prepared``) is used as it is
rather than loaded and checked a second time; after a restart, or for a job queued by another
process, the runner loads and checks the package itself from where the job's row says it is (the
uploaded zip, read in place, or the folder assembled from the uploaded files).

``stop()`` asks the engine to stop at its next progress call (by raising ``Cancelled``), puts the
interrupted job back in the queue without counting the attempt, and joins the thread. A job whose
engine never calls back stays ``running`` in the store; the next server start re-queues it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pathlib
import shutil
import threading
import time

from .engine import Cancelled, Engine, EngineInputError, JobSpec, Progress, ResultFile
from .jobs import Job, JobStore
from .package import Limits, ShotPackage

log = logging.getLogger("standin.backend.runner")

#: how often the idle runner applies the cleanup policy
CLEANUP_EVERY = 600.0
#: at most this many packages checked by the server are kept for the runner (the oldest are dropped:
#: such a job's package is simply loaded and checked again when it runs)
PREPARED_MAX = 64


def spec_to_dict(spec: JobSpec) -> dict:
    return {"profile": spec.profile, "seed": spec.seed, "takes": spec.takes,
            "frames": None if spec.frames is None else list(spec.frames), "options": dict(spec.options)}


def spec_from_dict(data: dict) -> JobSpec:
    frames = data.get("frames")
    return JobSpec(profile=data.get("profile", "preview"), seed=data.get("seed", 0), takes=data.get("takes", 1),
                   frames=None if frames is None else tuple(frames), options=dict(data.get("options") or {}))


class _Stopping(Cancelled):
    """The server is stopping: the job goes back to the queue rather than to ``cancelled``."""


def engine_error(error: BaseException) -> str:
    text = str(error).strip()
    return f"engine error: {type(error).__name__}: {text}" if text else f"engine error: {type(error).__name__}"


def check_results(results, staging: pathlib.Path) -> list[dict]:
    """The engine's list of results as plain dicts, each a file inside the staging folder."""
    if not isinstance(results, (list, tuple)):
        raise TypeError(f"Engine.run returned {type(results).__name__}, not a list of ResultFile")
    root = staging.resolve()
    checked = []
    for item in results:
        if not isinstance(item, ResultFile):
            raise TypeError(f"Engine.run returned {type(item).__name__} among its results, not ResultFile")
        path = pathlib.PurePosixPath(item.path)
        target = (root / path).resolve()
        if path.is_absolute() or ".." in path.parts or "\\" in item.path or not target.is_relative_to(root):
            raise ValueError(f"result path {item.path!r} is not inside the output folder")
        if not target.is_file():
            raise FileNotFoundError(f"the engine listed {item.path!r} but did not write it")
        checked.append({"path": path.as_posix(), "take": int(item.take),
                        "frame": None if item.frame is None else int(item.frame), "kind": str(item.kind)})
    return checked


class Runner:
    """Runs the jobs of ``store`` with ``engine``, one at a time, on its own thread."""

    def __init__(self, store: JobStore, engine: Engine, limits: Limits = Limits(), *, paused: bool = False,
                 idle_poll: float = 0.5, cleanup_every: float = CLEANUP_EVERY):
        self.store = store
        self.engine = engine
        self.limits = limits
        self.idle_poll = idle_poll
        self.cleanup_every = cleanup_every
        self._paused = paused
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cleanup = time.monotonic()
        self._prepared: collections.OrderedDict[str, tuple[ShotPackage, dict]] = collections.OrderedDict()
        self._prepared_lock = threading.Lock()
        self.current: str | None = None

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (again, after ``stop``)."""
        if self.alive:
            raise RuntimeError("the runner is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="standin-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop taking jobs, interrupt the running one at its next progress call and join the
        thread; returns False if it did not end within ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def pause(self) -> None:
        """Take no new job (the running one goes on)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def prepared(self, job_id: str, package: ShotPackage, spec: dict) -> None:
        """The server loaded ``job_id``'s package from the zip or folder it stored for the job and
        ``engine.check``-ed it with ``spec`` (as ``spec_to_dict`` gives it): when the job runs, the
        runner uses this package instead of loading and checking it again. Kept in memory only."""
        with self._prepared_lock:
            self._prepared[job_id] = (package, spec)
            while len(self._prepared) > PREPARED_MAX:
                self._prepared.popitem(last=False)

    def forget(self, job_id: str) -> None:
        """Drop what ``prepared`` kept for a job (it was refused, cancelled or removed)."""
        with self._prepared_lock:
            self._prepared.pop(job_id, None)

    def _load(self, job: Job, spec: JobSpec) -> ShotPackage:
        """The job's package: the one the server checked for it, or loaded and checked now."""
        with self._prepared_lock:
            package, checked_spec = self._prepared.pop(job.id, (None, None))
        if package is not None and pathlib.Path(job.package) == package.root and checked_spec == job.spec:
            return package
        package = ShotPackage.load(pathlib.Path(job.package), self.limits)
        self.engine.check(package, spec)
        return package

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- work ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._wake.clear()
                job = None if self._paused else self.store.claim()
                if job is None:
                    if time.monotonic() - self._last_cleanup > self.cleanup_every:
                        self._cleanup()
                    self._wake.wait(self.idle_poll)
                    continue
                self.run_job(job)
                self._cleanup()
            except Exception:  # the store itself failed (disk full…): log, breathe, go on
                log.exception("the job runner hit an error")
                self._stop.wait(1.0)

    def _cleanup(self) -> None:
        self._last_cleanup = time.monotonic()
        try:
            self.store.cleanup()
        except Exception:
            log.exception("job cleanup failed")

    def run_next(self) -> Job | None:
        """Claim and run the next queued job on the calling thread (for tools and tests)."""
        job = self.store.claim()
        return None if job is None else self.run_job(job)

    def run_job(self, job: Job) -> Job | None:
        """Run one claimed (``running``) job to its end; returns the job as it ended."""
        store, job_id = self.store, job.id
        self.current = job_id
        staging: pathlib.Path | None = None
        requeued = False
        began = time.monotonic()

        def progress(report: Progress) -> None:
            if self._stop.is_set():
                raise _Stopping("the server is stopping")
            step, total = int(report.step), int(report.total)
            eta = None
            if 0 < step <= total:
                eta = round((time.monotonic() - began) / step * (total - step), 2)
            frame = None if report.frame is None else int(report.frame)
            if store.progress(job_id, step, total, frame, eta, str(report.message or "")[:500]):
                raise Cancelled("the job was cancelled")

        try:
            if self._stop.is_set():
                raise _Stopping("the server is stopping")
            spec = spec_from_dict(job.spec)
            spec.check()
            package = self._load(job, spec)
            staging = store.staging_dir(job_id)
            staging.mkdir(parents=True)
            results = check_results(self.engine.run(package, spec, staging, progress), staging)
            if store.cancel_requested(job_id):
                raise Cancelled("the job was cancelled")
            result = store.result_dir(job_id)
            shutil.rmtree(result, ignore_errors=True)  # from a run the server died after committing
            os.replace(staging, result)
            staging = None
            if store.finish(job_id, "done", results=results, unless_cancelled=True) is None:
                shutil.rmtree(result, ignore_errors=True)  # cancelled between the rename and now
                store.finish(job_id, "cancelled")
        except _Stopping:
            if store.cancel_requested(job_id):
                store.finish(job_id, "cancelled")
            else:
                store.requeue(job_id, count_attempt=False)
                requeued = True
                log.info("job %s interrupted by shutdown; queued again", job_id)
        except Cancelled:
            store.finish(job_id, "cancelled")
        except Exception as error:
            if isinstance(error, EngineInputError):
                message = str(error)
            else:
                log.exception("job %s: the engine failed", job_id)
                message = engine_error(error)
            if store.cancel_requested(job_id):  # asked to stop anyway: the failure is moot
                store.finish(job_id, "cancelled")
            else:
                store.finish(job_id, "failed", error=message)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            ended = None
            if not requeued:
                with contextlib.suppress(Exception):  # e.g. the store was closed under us
                    ended = store.get(job_id)
                if ended is not None and ended.is_finished:
                    store.remove_inputs(job_id)  # the package is no longer needed; results stay
            self.current = None
        return ended if ended is not None else store.get(job_id)
