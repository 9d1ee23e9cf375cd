# SPDX-License-Identifier: GPL-3.0-or-later
"""The durable job store: one SQLite database (WAL) plus one folder per job under the data directory.

Layout::

    <data>/jobs.sqlite3            the table of jobs (stdlib sqlite3, WAL journal)
    <data>/jobs/<id>/upload.zip    the uploaded shot package as the client zipped it, read in place
                                   (``ShotPackage.load`` takes a zip as well as a folder)
    <data>/jobs/<id>/package/      or the package as a folder, when it came as separate files
                                   (either is removed once the job has finished)
    <data>/jobs/<id>/staging-*/    what the engine is writing right now (never served)
    <data>/jobs/<id>/result/       the committed results: the staging folder renamed on success

A job is ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``. The store is durable
across restarts: ``recover()`` (run when a server starts) puts jobs that a dead server left
``running`` back in the queue, counting attempts — a job that was running when the server stopped
twice is ``failed`` with "the server stopped while it ran this job twice" instead of being retried
forever; a job whose cancellation had been asked for becomes ``cancelled``. Queued jobs stay queued,
in submission order. Leftover staging folders and folders without a job row are deleted.

Results are atomic: the runner writes into ``staging-*`` and renames it to ``result/`` only when the
engine succeeded, so a failed or cancelled job never has a result folder.

Cleanup policy (``CLEANUP_POLICY``, also reported by ``/v1/health``): finished jobs (done, failed,
cancelled) older than ``keep_hours`` (default 72 hours, counted from when they finished) are removed —
their folder and their row; beyond that, at most ``max_finished`` (default 500) finished jobs are kept,
the most recently finished ones. Queued and running jobs are never removed. Cleanup runs when a
server starts, after every job, and every few minutes while the server is idle.

Thread safety: one connection shared under a lock; every write is one short transaction.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable

log = logging.getLogger("standin.backend.jobs")

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
#: a job that was ``running`` when the server stopped this many times fails instead of running again
MAX_ATTEMPTS = 2
STOPPED_TWICE = "the server stopped while it ran this job twice"
KEEP_HOURS = 72.0
MAX_FINISHED = 500
CLEANUP_POLICY = (
    "finished jobs (done, failed, cancelled) are deleted with their files {keep_hours:g} hours after they "
    "finish; at most {max_finished} finished jobs are kept (the most recent); queued and running jobs are kept"
)

#: ``PRAGMA user_version`` of the database: bump it (and migrate in ``open``) when the table changes
SCHEMA_VERSION = 1
_ID = re.compile(r"[0-9a-f]{32}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    engine TEXT NOT NULL,
    spec TEXT NOT NULL,
    package TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    frame INTEGER,
    eta REAL,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    results TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
_COLUMNS = ("id", "state", "engine", "spec", "package", "created", "started", "finished", "step", "total",
            "frame", "eta", "message", "error", "results", "attempts", "cancel_requested")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM jobs"


def is_job_id(value: str) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    engine: str
    spec: dict
    package: str
    created: float
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total: int = 0
    frame: int | None = None
    eta_seconds: float | None = None
    message: str = ""
    error: str | None = None
    results: list = field(default_factory=list)
    attempts: int = 0
    cancel_requested: bool = False

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def _from_row(cls, row) -> "Job":
        values = dict(zip(_COLUMNS, row))
        values["spec"] = json.loads(values["spec"])
        values["results"] = json.loads(values["results"])
        values["eta_seconds"] = values.pop("eta")
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


class JobStore:
    """Jobs in ``<data_dir>/jobs.sqlite3``, their files in ``<data_dir>/jobs/<id>/``."""

    def __init__(self, data_dir, keep_hours: float = KEEP_HOURS, max_finished: int = MAX_FINISHED):
        if keep_hours < 0 or max_finished < 0:
            raise ValueError("keep_hours and max_finished must not be negative")
        self.root = pathlib.Path(data_dir)
        self.jobs_dir = self.root / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "jobs.sqlite3"
        self.keep_hours = float(keep_hours)
        self.max_finished = int(max_finished)
        self._lock = threading.RLock()
        self._listeners: dict[str, list[Callable[[Job], None]]] = {}
        self._db: sqlite3.Connection | None = None
        self.open()

    # -- plumbing ------------------------------------------------------------------------------

    def open(self) -> None:
        """(Re)connect to the database; a no-op while connected."""
        with self._lock:
            if self._db is not None:
                return
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash of the process loses nothing
            db.executescript(_SCHEMA)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise RuntimeError(f"{self.path} was written by a newer standin-backend (schema {version}).")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the job store is closed")
        return self._db

    def _write(self, job_id: str | None, work: Callable[[sqlite3.Connection], object]):
        """Run ``work`` in one IMMEDIATE transaction, then tell ``job_id``'s listeners."""
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                value = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        if job_id is not None:
            self._notify(job_id)
        return value

    def _read(self, sql: str, args=()) -> list:
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def subscribe(self, job_id: str, callback: Callable[[Job], None]) -> Callable[[], None]:
        """Call ``callback(job)`` (from the writing thread) after every change to the job; returns
        the function that unsubscribes. The callback must be quick and must not raise."""
        with self._lock:
            self._listeners.setdefault(job_id, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._listeners.get(job_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._listeners.pop(job_id, None)

        return unsubscribe

    def _notify(self, job_id: str) -> None:
        with self._lock:
            callbacks = list(self._listeners.get(job_id, ()))
        if not callbacks:
            return
        job = self.get(job_id)
        if job is None:
            return
        for callback in callbacks:
            try:
                callback(job)
            except Exception:  # a listener must never break the writer
                log.exception("job listener failed")

    # -- folders -------------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> pathlib.Path:
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    def result_dir(self, job_id: str) -> pathlib.Path:
        return self.job_dir(job_id) / "result"

    def staging_dir(self, job_id: str) -> pathlib.Path:
        """A fresh staging folder name for one run of the job (not created)."""
        return self.job_dir(job_id) / f"staging-{uuid.uuid4().hex[:12]}"

    def remove_inputs(self, job_id: str) -> None:
        """Delete what was uploaded for a job (its package), keeping its results."""
        folder = self.job_dir(job_id)
        for name in ("package", "incoming"):
            shutil.rmtree(folder / name, ignore_errors=True)
        (folder / "upload.zip").unlink(missing_ok=True)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    # -- reading -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        rows = self._read(f"{_SELECT} WHERE id = ?", (job_id,))
        return Job._from_row(rows[0]) if rows else None

    def jobs(self, state: str | None = None) -> list[Job]:
        """All jobs (or those in one state), in submission order."""
        if state is None:
            rows = self._read(f"{_SELECT} ORDER BY seq")
        else:
            rows = self._read(f"{_SELECT} WHERE state = ? ORDER BY seq", (state,))
        return [Job._from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, number in self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[state] = number
        return counts

    def cancel_requested(self, job_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0][0])

    def policy(self) -> dict:
        return {"keep_hours": self.keep_hours, "max_finished": self.max_finished,
                "policy": CLEANUP_POLICY.format(keep_hours=self.keep_hours, max_finished=self.max_finished)}

    # -- writing -------------------------------------------------------------------------------

    def add(self, job_id: str, engine: str, spec: dict, package, now: float | None = None) -> Job:
        """A new queued job; ``package`` is what ``ShotPackage.load`` reads its package from: the folder
        that holds its shot.json, or the zip that holds that folder."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        created = time.time() if now is None else now
        self._write(job_id, lambda db: db.execute(
            "INSERT INTO jobs (id, state, engine, spec, package, created) VALUES (?, 'queued', ?, ?, ?, ?)",
            (job_id, engine, json.dumps(spec), str(package), created)))
        return self.get(job_id)

    def claim(self) -> Job | None:
        """The oldest queued job, now ``running`` (its attempt counted), or None."""

        def work(db):
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1, step = 0, "
                       "total = 0, frame = NULL, eta = NULL, message = '', error = NULL WHERE id = ?",
                       (time.time(), row[0]))
            return row[0]

        job_id = self._write(None, work)
        if job_id is None:
            return None
        self._notify(job_id)
        return self.get(job_id)

    def progress(self, job_id: str, step: int, total: int, frame: int | None = None,
                 eta: float | None = None, message: str = "") -> bool:
        """Record a running job's progress; returns whether its cancellation was asked for."""

        def work(db):
            db.execute("UPDATE jobs SET step = ?, total = ?, frame = ?, eta = ?, message = ? "
                       "WHERE id = ? AND state = 'running'", (step, total, frame, eta, message, job_id))
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return bool(row and row[0])

        return self._write(job_id, work)

    def request_cancel(self, job_id: str) -> tuple[str, Job] | None:
        """Cancel a job: a queued one at once, a running one by setting its flag (the runner stops
        it at the engine's next progress call). Returns (state before, job after); None if unknown."""

        def work(db):
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row[0] == "queued":
                db.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished = ?, eta = NULL "
                           "WHERE id = ?", (time.time(), job_id))
            elif row[0] == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return row[0]

        if not is_job_id(job_id):
            return None
        before = self._write(job_id, work)
        if before is None:
            return None
        if before == "queued":
            self.remove_inputs(job_id)
        return before, self.get(job_id)

    def finish(self, job_id: str, state: str, error: str | None = None, results: list | None = None,
               unless_cancelled: bool = False) -> Job | None:
        """End a running job. With ``unless_cancelled``, nothing changes (and None is returned) if
        its cancellation was asked for meanwhile."""
        if state not in FINISHED:
            raise ValueError(f"not a finished state: {state!r}")
        condition = " AND cancel_requested = 0" if unless_cancelled else ""

        def work(db):
            cursor = db.execute(
                "UPDATE jobs SET state = ?, error = ?, results = ?, finished = ?, eta = NULL "
                f"WHERE id = ? AND state = 'running'{condition}",
                (state, error, json.dumps(results or []), time.time(), job_id))
            return cursor.rowcount

        if not self._write(job_id, work):
            return None
        return self.get(job_id)

    def requeue(self, job_id: str, count_attempt: bool = False) -> None:
        """Put a running job back in the queue; ``count_attempt=False`` when the server stopped it
        on purpose (a graceful shutdown is not the job's fault)."""
        undo = "" if count_attempt else ", attempts = MAX(attempts - 1, 0)"
        self._write(job_id, lambda db: db.execute(
            "UPDATE jobs SET state = 'queued', started = NULL, step = 0, total = 0, frame = NULL, eta = NULL, "
            f"message = ''{undo} WHERE id = ? AND state = 'running'", (job_id,)))

    def recover(self) -> dict[str, list[str]]:
        """After a restart: re-queue what a dead server left running (or fail it after
        ``MAX_ATTEMPTS``), and delete leftover staging folders and folders with no job. Call it only
        when no runner is working on this store."""
        outcome: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": []}
        now = time.time()

        def work(db):
            for job_id, attempts, cancel in db.execute(
                    "SELECT id, attempts, cancel_requested FROM jobs WHERE state = 'running' ORDER BY seq").fetchall():
                if cancel:
                    db.execute("UPDATE jobs SET state = 'cancelled', finished = ?, eta = NULL WHERE id = ?",
                               (now, job_id))
                    outcome["cancelled"].append(job_id)
                elif attempts >= MAX_ATTEMPTS:
                    db.execute("UPDATE jobs SET state = 'failed', error = ?, finished = ?, eta = NULL WHERE id = ?",
                               (STOPPED_TWICE, now, job_id))
                    outcome["failed"].append(job_id)
                else:
                    db.execute("UPDATE jobs SET state = 'queued', started = NULL, step = 0, total = 0, "
                               "frame = NULL, eta = NULL, message = '' WHERE id = ?", (job_id,))
                    outcome["requeued"].append(job_id)

        self._write(None, work)
        for job_id in outcome["failed"] + outcome["cancelled"]:
            self.remove_inputs(job_id)
        known = {row[0]: row[1] for row in self._read("SELECT id, state FROM jobs")}
        for folder in self.jobs_dir.iterdir():
            if not folder.is_dir() or not is_job_id(folder.name):
                continue
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)
                continue
            for staging in folder.glob("staging-*"):
                shutil.rmtree(staging, ignore_errors=True)
            if known[folder.name] != "done":
                shutil.rmtree(folder / "result", ignore_errors=True)
        if any(outcome.values()):
            log.info("recovered jobs: %s", {k: len(v) for k, v in outcome.items()})
        return outcome

    def cleanup(self, now: float | None = None) -> list[str]:
        """Apply the cleanup policy (see the module docstring); returns the ids removed."""
        now = time.time() if now is None else now
        cutoff = now - self.keep_hours * 3600.0

        def work(db):
            finished = db.execute(
                "SELECT id, finished FROM jobs WHERE state IN ('done', 'failed', 'cancelled') "
                "ORDER BY finished DESC, seq DESC").fetchall()
            doomed = [job_id for index, (job_id, at) in enumerate(finished)
                      if index >= self.max_finished or (at or 0.0) < cutoff]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in doomed])
            return doomed

        doomed = self._write(None, work)
        for job_id in doomed:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        if doomed:
            log.info("cleanup removed %d finished jobs", len(doomed))
        return doomed
