# SPDX-License-Identifier: GPL-3.0-or-later
"""Generating takes off Blender's main thread: one worker thread, requests in order. No bpy.

The main thread hands ``GenerationRequest``s to ``GenerationWorker.submit`` and, from a timer,
drains ``poll()`` for ``Update``s to show (and to record finished takes on the shot). The worker,
for each request in turn:

1. sends the shot package (``BackendClient.submit``), or, for a request with ``resume_job_id``
   (a job in flight when Blender closed), looks that job up: a backend that no longer knows it
   gives a ``lost`` update;
2. follows the job's progress (server-sent events, or polling when the stream breaks) as
   ``progress`` updates;
3. when the job is done, downloads its frames into a ``takes.StagedTake`` and commits it as the
   shot's next take (``vNNN``) with a ``TakeRecord`` made of ``request.record`` plus the job's id,
   the backend's URL and the time (UTC) → a ``done`` update with the take's folder and record.

Any error gives a ``failed`` update whose message is the ``BackendError``'s sentence; the staging
folder is thrown away and earlier takes are never touched. ``cancel(shot)`` drops the shot's
queued requests and cancels its job in flight (``DELETE`` on the backend) → ``cancelled``.
``close()`` stops the thread and leaves backend jobs running (so they can be resumed) unless asked.

Update kinds: ``submitted`` (the backend took the job: ``job_id`` is set), ``progress``, ``done``,
``failed``, ``cancelled``, ``lost``. One take per request: variations are separate requests with
consecutive seeds.
"""

from __future__ import annotations

import collections
import logging
import pathlib
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from .backend_client import FINAL_EVENTS, BackendClient, BackendError
from .takes import StagedTake, TakeError, TakeRecord

__all__ = ["GenerationRequest", "GenerationWorker", "Update", "UPDATE_KINDS"]

log = logging.getLogger("standin.generation")

UPDATE_KINDS = ("submitted", "progress", "done", "failed", "cancelled", "lost")
#: the least time between two upload/download progress updates
PROGRESS_EVERY = 0.25


@dataclass
class GenerationRequest:
    """One take of one shot: the package to send, where its takes live, the job's spec, and the
    take record's fields known before the job (seed, profile, model, loras, prompts, inputs_hash,
    fps, width, height…). ``resume_job_id`` follows a job already on the backend instead of sending."""

    shot: str
    package_dir: pathlib.Path
    shot_dir: pathlib.Path
    spec: dict
    record: dict = field(default_factory=dict)
    resume_job_id: str | None = None

    def __post_init__(self):
        self.package_dir = pathlib.Path(self.package_dir)
        self.shot_dir = pathlib.Path(self.shot_dir)
        self.spec = {"takes": 1, **self.spec}
        if self.spec["takes"] != 1:
            raise ValueError("one take per request: ask for variations as separate requests, each with its own "
                             "seed (seed, seed + 1, …).")


@dataclass(frozen=True)
class Update:
    """What happened to a shot's request; ``take_folder`` and ``take`` are set on ``done``.

    ``progress`` updates count the job's steps (``step`` of ``total``, ``frame``, ``eta`` in
    seconds); before the job exists they count the upload's bytes (``job_id`` None), after it
    the files downloaded; ``message`` always says which."""

    shot: str
    kind: str
    job_id: str | None = None
    step: int = 0
    total: int = 0
    frame: int | None = None
    eta: float | None = None
    message: str = ""
    take_folder: pathlib.Path | None = None
    take: TakeRecord | None = None


class _InFlight:
    """The request the worker is on, and what the main thread asked of it meanwhile."""

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.client: BackendClient | None = None
        self.job_id: str | None = request.resume_job_id
        self.submitted = False
        self.cancel_requested = False
        #: why telling the backend to cancel failed, if it did
        self.cancel_error = ""


class GenerationWorker:
    """Runs ``GenerationRequest``s one after another on a background thread.

    ``client_factory()`` makes the ``BackendClient`` for each request (so a changed URL or token
    applies to the next one). Call ``poll()`` from the main thread; everything else here is safe
    to call from any thread and never blocks on the network.
    """

    def __init__(self, client_factory: Callable[[], BackendClient], *, read_timeout: float = 30.0,
                 poll_interval: float = 0.5):
        self._client_factory = client_factory
        self._read_timeout = read_timeout
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._work_arrived = threading.Condition(self._lock)
        self._waiting: collections.deque[GenerationRequest] = collections.deque()
        self._current: _InFlight | None = None
        self._closing = False
        self._updates: queue.SimpleQueue[Update] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="standin-generation", daemon=True)
        self._thread.start()

    # -- the main thread's side ----------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> None:
        """Queue ``request`` behind the others."""
        with self._lock:
            if self._closing:
                raise RuntimeError("the generation worker is closed; make a new one.")
            self._waiting.append(request)
            self._work_arrived.notify()

    def cancel(self, shot: str) -> bool:
        """Drop the shot's queued requests and cancel its job in flight; False if it had none."""
        with self._lock:
            dropped = [request for request in self._waiting if request.shot == shot]
            for request in dropped:
                self._waiting.remove(request)
            flight = self._current if self._current is not None and self._current.request.shot == shot else None
            job_to_cancel = None
            if flight is not None and not flight.cancel_requested:
                flight.cancel_requested = True
                job_to_cancel = flight.job_id if flight.submitted else None
        for request in dropped:
            self._emit(request.shot, "cancelled", request.resume_job_id,
                       message="cancelled before it was sent to the backend.")
            if request.resume_job_id:  # its job is on the backend: stop it there too
                self._cancel_on_backend(None, request.resume_job_id)
        if job_to_cancel is not None:
            self._cancel_on_backend(flight, job_to_cancel)
        return bool(dropped) or flight is not None

    def cancel_all(self) -> None:
        """Cancel every queued request and the one in flight."""
        with self._lock:
            shots = {request.shot for request in self._waiting}
            if self._current is not None:
                shots.add(self._current.request.shot)
        for shot in shots:
            self.cancel(shot)

    def poll(self) -> list[Update]:
        """Every update since the last call, oldest first; never blocks."""
        drained = []
        while True:
            try:
                drained.append(self._updates.get_nowait())
            except queue.Empty:
                return drained

    @property
    def busy(self) -> bool:
        """Whether requests are queued or in flight (it turns False a moment after the last update)."""
        with self._lock:
            return bool(self._waiting) or self._current is not None

    def close(self, cancel_jobs: bool = False, timeout: float = 5.0) -> bool:
        """Stop the thread; queued requests are dropped. The job in flight keeps running on the
        backend (resume it later by id) unless ``cancel_jobs``. False if the thread did not stop
        within ``timeout`` seconds (it is a daemon: it will not keep Blender open)."""
        with self._lock:
            self._closing = True
            self._waiting.clear()
            flight = self._current
            self._work_arrived.notify()
        if flight is not None and flight.client is not None:
            if cancel_jobs and flight.job_id is not None:
                try:
                    flight.client.cancel(flight.job_id)
                except BackendError as error:
                    log.warning("could not cancel job %s: %s", flight.job_id, error)
            flight.client.close()  # a thread waiting on a quiet event stream returns now
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._work_arrived.wait()
                if self._closing:
                    return
                flight = self._current = _InFlight(self._waiting.popleft())
            try:
                self._process(flight)
            except Exception as error:  # a bug here must not kill the thread nor go unreported
                log.exception("generating %s failed", flight.request.shot)
                self._emit(flight.request.shot, "failed", flight.job_id,
                           message=f"unexpected error while generating {flight.request.shot}: "
                                   f"{type(error).__name__}: {error}. Please report it (details in the console).")
            finally:
                with self._lock:
                    self._current = None

    def _process(self, flight: _InFlight) -> None:
        """Send (or find) the job, follow it, record its take; every outcome is one update."""
        request = flight.request
        try:
            flight.client = self._client_factory()
            if request.resume_job_id:
                if self._look_up(flight) is None:
                    return
            else:
                job = flight.client.submit(request.package_dir, request.spec,
                                           progress=self._progress_reporter(request.shot, "uploading the shot package"),
                                           should_stop=lambda: flight.cancel_requested or self._closing)
                self._attach(flight, job["id"])
                self._emit(request.shot, "submitted", flight.job_id, message="queued on the backend.")
            try:
                final = self._follow(flight)
            except BackendError as error:
                if error.kind != "not_found" or flight.cancel_requested:
                    raise
                self._emit(request.shot, "lost", flight.job_id,
                           message=f"the backend no longer knows job {flight.job_id} ({error}); "
                                   f"generate the shot again.")
                return
            if final is None:  # closing: the job goes on on the backend
                return
            state = final.get("state")
            if state == "cancelled":
                self._emit(request.shot, "cancelled", flight.job_id, message=self._cancelled_message(flight))
            elif state == "failed":
                reason = final.get("error") or "the backend gave no reason; see its log"
                self._emit(request.shot, "failed", flight.job_id,
                           message=f"the backend could not generate {request.shot}: {reason}")
            elif flight.cancel_requested:
                self._emit(request.shot, "cancelled", flight.job_id,
                           message=f"cancelled; job {flight.job_id} had already finished, its frames were not "
                                   f"downloaded.")
            else:
                self._record_take(flight, final)
        except BackendError as error:
            if self._closing and not flight.cancel_requested:
                log.info("stopped following %s (job %s) on close: %s", request.shot, flight.job_id, error)
            elif error.kind == "cancelled" or flight.cancel_requested:
                self._emit(request.shot, "cancelled", flight.job_id, message=self._cancelled_message(flight, error))
            else:
                self._emit(request.shot, "failed", flight.job_id, message=str(error))
        except TakeError as error:
            self._emit(request.shot, "failed", flight.job_id, message=str(error))

    def _record_take(self, flight: _InFlight, job: dict) -> None:
        """Download a done job into a staging folder and commit it as the shot's next take; a
        download that fails or is cancelled leaves nothing behind."""
        request = flight.request
        with StagedTake(request.shot_dir) as staging:  # discarded unless committed
            flight.client.download_results(job, staging,
                                           should_stop=lambda: flight.cancel_requested or self._closing,
                                           progress=self._progress_reporter(request.shot, "downloading the frames",
                                                                            job_id=flight.job_id, as_count=True))
            record = self._take_record(request, job, flight.client)
            folder = staging.commit(record)
        self._emit(request.shot, "done", flight.job_id, step=len(record.frames), total=len(record.frames),
                   message=f"{record.name}: {len(record.frames)} frames.", take_folder=folder, take=record)

    def _look_up(self, flight: _InFlight) -> dict | None:
        """The job to resume, or None after a ``lost`` update."""
        job_id = flight.request.resume_job_id
        try:
            job = flight.client.job(job_id)
        except BackendError as error:
            if error.kind != "not_found":
                raise
            self._emit(flight.request.shot, "lost", job_id,
                       message=f"the backend at {flight.client.url} no longer knows job {job_id} "
                               f"(finished jobs are deleted after a while, or it is another backend); "
                               f"generate the shot again.")
            return None
        self._attach(flight, job_id)
        self._emit(flight.request.shot, "submitted", job_id,
                   message=f"following job {job_id} again ({job.get('state')}).")
        return job

    def _attach(self, flight: _InFlight, job_id: str) -> None:
        """The backend has the job: from now on a cancel goes to it (and one asked meanwhile goes now)."""
        with self._lock:
            flight.job_id = job_id
            flight.submitted = True
            cancel_now = flight.cancel_requested
        if cancel_now:
            self._tell_backend_to_cancel(flight.client, job_id, flight)

    def _follow(self, flight: _InFlight) -> dict | None:
        """Progress updates until the job ends; the final job, or None when the worker closes."""
        for event, data in flight.client.events(flight.job_id, read_timeout=self._read_timeout,
                                                poll_interval=self._poll_interval,
                                                should_stop=lambda: self._closing):
            if event == "progress":
                self._emit(flight.request.shot, "progress", flight.job_id, step=int(data.get("step") or 0),
                           total=int(data.get("total") or 0), frame=data.get("frame"), eta=data.get("eta_seconds"),
                           message=data.get("message") or "")
            elif event in FINAL_EVENTS:
                return data
        return None

    def _cancel_on_backend(self, flight: _InFlight | None, job_id: str) -> None:
        """Send the cancel on a short-lived thread: the main thread never waits on the network."""
        client = flight.client if flight is not None and flight.client is not None else None

        def send() -> None:
            try:
                self._tell_backend_to_cancel(client or self._client_factory(), job_id, flight)
            except BackendError as error:  # the client factory itself failed
                log.warning("could not cancel job %s: %s", job_id, error)

        threading.Thread(target=send, name=f"standin-cancel-{job_id}", daemon=True).start()

    @staticmethod
    def _tell_backend_to_cancel(client: BackendClient, job_id: str, flight: _InFlight | None) -> None:
        try:
            client.cancel(job_id)
        except BackendError as error:
            log.warning("could not cancel job %s: %s", job_id, error)
            if flight is not None:
                flight.cancel_error = str(error)

    @staticmethod
    def _cancelled_message(flight: _InFlight, error: BackendError | None = None) -> str:
        if flight.cancel_error:
            return (f"cancelled here, but the backend could not be told ({flight.cancel_error}); "
                    f"job {flight.job_id} may still be running there.")
        if error is not None and error.kind != "cancelled":
            return f"cancelled ({error})."
        return "cancelled."

    def _progress_reporter(self, shot: str, doing: str, job_id: str | None = None,
                           as_count: bool = False) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback that sends at most one update every PROGRESS_EVERY s."""
        last_sent = [0.0]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last_sent[0] < PROGRESS_EVERY:
                return
            last_sent[0] = now
            amount = f"{done} of {total}" if as_count else f"{100 * done // max(total, 1)}%"
            self._emit(shot, "progress", job_id, step=done, total=total, message=f"{doing}: {amount}")

        return report

    @staticmethod
    def _take_record(request: GenerationRequest, job: dict, client: BackendClient) -> TakeRecord:
        """``request.record`` plus what only the finished job knows."""
        fields = {"seed": request.spec.get("seed", 0), "profile": request.spec.get("profile", "preview"),
                  **request.record}
        fields.update(name="", shot=request.shot, engine=job.get("engine") or fields.get("engine", ""),
                      job_id=job["id"], backend=client.url,
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return TakeRecord.from_dict(fields)

    def _emit(self, shot: str, kind: str, job_id: str | None, **values) -> None:
        self._updates.put(Update(shot, kind, job_id, **values))
