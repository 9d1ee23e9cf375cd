# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP API (v1) of the generation backend: submit a shot package, follow the job, fetch results.

``create_app(engine, data_dir, ...)`` builds the FastAPI app around any ``Engine``; the job store
(``jobs.JobStore``) lives in ``data_dir`` and one worker thread (``runner.Runner``) runs the jobs.
When the app starts it takes a lock on the data folder, re-queues what a previous server left
running and applies the cleanup policy; when it stops it interrupts the running job (queued again
for the next start). An uploaded zip is kept as it came, ``<job>/upload.zip``, and is the job's
package, read in place (``package.ZipSource``): nothing is unpacked. Routes (the schema is at
``/openapi.json``):

- ``GET /v1/health`` — engine, queue counts, version, limits, cleanup policy.
- ``GET /v1/models`` — what the model registry offers (empty lists without one).
- ``POST /v1/jobs`` — multipart upload: ``package`` (a zip) and/or ``files`` (each part's filename
  is its path in the package, ``depth/0001.png``), and ``spec`` (a JSON object of JobSpec fields).
  202 when queued; 400 for a package or spec the engine cannot use; 413 over the upload limit;
  415 for a body that is not multipart; 422 for a malformed request.
- ``GET /v1/jobs/{id}`` — state, progress, ETA, error, results (with download URLs).
- ``GET /v1/jobs/{id}/events`` — server-sent events: ``progress`` on every change, then one
  ``done``/``failed``/``cancelled`` event, and the stream ends.
- ``GET /v1/jobs/{id}/files/{path}`` — one result file, strictly inside the job's result folder.
- ``GET /v1/jobs/{id}/results.zip`` — every result file of a done job in one stored (uncompressed:
  PNGs are compressed already) zip, streamed as it is read; 409 while the job has not succeeded.
- ``DELETE /v1/jobs/{id}`` — cancel: a queued job at once, a running one at the engine's next
  progress call; 409 for a finished job.

With a token, every ``/v1`` route needs ``Authorization: Bearer <token>`` (401 otherwise). Every
error is JSON ``{"error": "<sentence>", "detail": ...}``; bad input is always a 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hmac
import io
import json
import logging
import os
import pathlib
import shutil
import threading
import urllib.parse
import zipfile
from datetime import datetime, timezone
from typing import Any, Literal

import cv2
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .engine import EngineInputError
from .jobs import FINISHED, KEEP_HOURS, MAX_FINISHED, Job, JobStore
from .package import Limits, ShotPackage, extract_zip
from .runner import Runner, spec_from_dict, spec_to_dict

log = logging.getLogger("standin.backend.server")

API = "v1"
#: the largest ``spec`` field accepted (it is JSON, not pixels)
MAX_SPEC_BYTES = 1024 * 1024
#: the deepest path a ``files`` part may name
MAX_PATH_PARTS = 8
#: upload bytes gathered before they are handed to the multipart parser on a worker thread (rather
#: than one thread hop per socket chunk of ~64 KiB: a 10 MiB upload is received in ~16 ms, not ~20)
UPLOAD_BATCH = 1024 * 1024
#: bytes read at a time from a result file into results.zip
ARCHIVE_CHUNK = 1024 * 1024


def backend_version() -> str:
    try:
        from importlib.metadata import version

        return version("standin")
    except Exception:
        return "0.1.0"


# -- errors -----------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers


def _error(status: int, message: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status, headers=headers)


def _validation_sentence(errors: list) -> str:
    if not errors:
        return "the request is not valid."
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body",))
    message = str(first.get("msg", "is not valid"))
    return f"{where}: {message}." if where else f"{message}."


def _plain(errors: list) -> list:
    """Validation errors as plain JSON (no exception objects in 'ctx')."""
    return json.loads(json.dumps(errors, default=str))


def _size(number: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:g} {unit}" if unit == "bytes" else f"{number:.1f} {unit}"
        number /= 1024
    return str(number)


# -- API models -------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, as a sentence for the user")
    detail: Any = Field(default=None, description="machine-readable detail (validation errors), if any")


class QueueOut(BaseModel):
    queued: int
    running: int
    done: int
    failed: int
    cancelled: int


class CleanupOut(BaseModel):
    keep_hours: float = Field(description="finished jobs are deleted this many hours after they finish")
    max_finished: int = Field(description="at most this many finished jobs are kept (the most recent)")
    policy: str


class LimitsOut(BaseModel):
    max_frames: int
    max_edge: int
    max_characters: int
    max_upload_bytes: int
    max_files: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    api: Literal["v1"]
    version: str = Field(description="the backend's version")
    engine: str = Field(description="the engine's short name (--engine)")
    kind: str = Field(description="'image' (one picture per frame) or 'clip'")
    describe: dict[str, Any] = Field(description="the engine's own description: device, library versions…")
    queue: QueueOut
    cleanup: CleanupOut
    limits: LimitsOut
    auth: bool = Field(description="whether /v1 routes need a bearer token")


class ModelsOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    bases: list[dict[str, Any]] = []
    controlnets: list[dict[str, Any]] = []
    loras: list[dict[str, Any]] = []
    ip_adapters: list[dict[str, Any]] = []


class SpecIn(BaseModel):
    """The ``spec`` form field: a JSON object of JobSpec fields, every one optional."""

    model_config = ConfigDict(extra="forbid")
    profile: str = "preview"
    seed: StrictInt = 0
    takes: StrictInt = 1
    frames: list[StrictInt] | None = None
    options: dict[str, Any] = {}


class SpecOut(BaseModel):
    profile: str
    seed: int
    takes: int
    frames: list[int] | None
    options: dict[str, Any]


class LinksOut(BaseModel):
    job: str
    events: str
    files: str = Field(description="prefix of the result files' URLs")
    results: str = Field(description="every result file in one zip, once the job is done")


class ResultOut(BaseModel):
    path: str = Field(description="relative to the job's result folder, e.g. take01/0001.png")
    take: int
    frame: int | None
    kind: str = Field(description="frame | clip | plate")
    url: str


class JobOut(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    engine: str
    created: datetime
    started: datetime | None
    finished: datetime | None
    step: int
    total: int
    frame: int | None
    eta_seconds: float | None
    message: str
    error: str | None
    attempts: int
    cancel_requested: bool
    spec: SpecOut
    results: list[ResultOut]
    links: LinksOut


class SubmitOut(BaseModel):
    id: str
    state: Literal["queued"]
    links: LinksOut


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _links(job_id: str) -> dict:
    base = f"/{API}/jobs/{job_id}"
    return {"job": base, "events": f"{base}/events", "files": f"{base}/files/", "results": f"{base}/results.zip"}


def job_out(job: Job) -> dict:
    """The JSON form of a job, as ``JobOut`` describes it."""
    files = _links(job.id)["files"]
    return {
        "id": job.id, "state": job.state, "engine": job.engine,
        "created": _when(job.created).isoformat(), "started": _when(job.started) and _when(job.started).isoformat(),
        "finished": _when(job.finished) and _when(job.finished).isoformat(),
        "step": job.step, "total": job.total, "frame": job.frame, "eta_seconds": job.eta_seconds,
        "message": job.message, "error": job.error, "attempts": job.attempts,
        "cancel_requested": job.cancel_requested, "spec": spec_to_dict(spec_from_dict(job.spec)),
        "results": [dict(item, url=files + urllib.parse.quote(item["path"])) for item in job.results],
        "links": _links(job.id),
    }


def _progress_out(job: Job) -> dict:
    return {"id": job.id, "state": job.state, "step": job.step, "total": job.total, "frame": job.frame,
            "eta_seconds": job.eta_seconds, "message": job.message, "cancel_requested": job.cancel_requested}


# -- the upload -------------------------------------------------------------------------------


class UploadTooLarge(Exception):
    pass


def safe_relative_path(name: str) -> str:
    """A ``files`` part's filename as a safe relative POSIX path, or ``EngineInputError``."""
    bad = (not name or len(name) > 1024 or "\\" in name or "\x00" in name or name.startswith("/")
           or any(part in ("", ".", "..") for part in name.split("/")))
    if bad or len(name.split("/")) > MAX_PATH_PARTS:
        raise EngineInputError(
            f"file name {name[:200]!r} is not a relative path inside the package (like depth/0001.png): "
            f"no '..', no leading '/', no backslashes."
        )
    return name


def _storage_error(error: OSError) -> None:
    """Raise 507 when the server's disk, not the request, is the problem."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("no space left for an upload: %s", error)
        raise ApiError(507, "the server has no disk space left for this upload; try again later.") from None


class _MultipartSink:
    """Callbacks for python-multipart: ``files`` parts go straight to disk under ``incoming/``, the
    ``package`` zip to ``upload.zip``, ``spec`` to memory. Runs on a worker thread."""

    def __init__(self, job_dir: pathlib.Path, limits: Limits):
        self.job_dir = job_dir
        self.incoming = job_dir / "incoming"
        self.zip_path = job_dir / "upload.zip"
        self.limits = limits
        self.spec: bytes | None = None
        self.has_zip = False
        self.paths: set[str] = set()
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._field: bytearray | None = None
        self._file = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_end": self.on_end}

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_part_begin(self) -> None:
        self._disposition, self._field = b"", None
        self.close()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise ApiError(422, "every part of the form needs a name (package, files or spec).")
        name = options[b"name"].decode("latin-1")
        if name == "spec":
            if self.spec is not None:
                raise ApiError(422, "send one spec per job.")
            self._field = bytearray()
        elif name == "package":
            if self.has_zip:
                raise ApiError(422, "send one package zip per job.")
            self.has_zip = True
            try:
                self._file = open(self.zip_path, "wb")
            except OSError as error:
                _storage_error(error)
                raise
        elif name == "files":
            raw = options.get(b"filename")
            if raw is None:
                raise ApiError(422, "each 'files' part needs its path in the package as filename (depth/0001.png).")
            try:
                filename = raw.decode("latin-1").encode("latin-1").decode("utf-8")
            except UnicodeError:
                raise ApiError(422, "file names must be UTF-8.") from None
            path = safe_relative_path(filename)
            if path in self.paths:
                raise EngineInputError(f"{path} was sent twice.")
            self.paths.add(path)
            if len(self.paths) > self.limits.max_files:
                raise EngineInputError(f"more than {self.limits.max_files} files; that is the limit.")
            target = self.incoming / path
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(target, "xb")
            except OSError as error:
                _storage_error(error)
                raise EngineInputError(f"{path} cannot be stored: {error.strerror} "
                                       f"(is it both a file and a folder?).") from None
        else:
            raise ApiError(422, f"unknown form field {name[:100]!r}: send 'package', 'files' and 'spec'.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field is not None:
            if len(self._field) + end - start > MAX_SPEC_BYTES:
                raise ApiError(422, f"spec is larger than {_size(MAX_SPEC_BYTES)}.")
            self._field += data[start:end]
        elif self._file is not None:
            try:
                self._file.write(data[start:end])
            except OSError as error:
                _storage_error(error)
                raise

    def on_part_end(self) -> None:
        if self._field is not None:
            self.spec = bytes(self._field)
            self._field = None
        self.close()


async def _receive_upload(request: Request, job_dir: pathlib.Path, limits: Limits) -> _MultipartSink:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(415, "send the job as multipart/form-data (fields: package, files, spec).")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_upload_bytes:
        raise UploadTooLarge()
    sink = _MultipartSink(job_dir, limits)
    job_dir.mkdir(parents=True)
    try:
        parser = MultipartParser(params[b"boundary"], sink.callbacks())
        received, batch, batched = 0, [], 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.max_upload_bytes:
                raise UploadTooLarge()
            if chunk:
                batch.append(chunk)
                batched += len(chunk)
            if batched >= UPLOAD_BATCH:
                await run_in_threadpool(parser.write, b"".join(batch))
                batch, batched = [], 0
        if batch:
            await run_in_threadpool(parser.write, b"".join(batch))
        await run_in_threadpool(parser.finalize)
        if not sink.ended:
            raise ApiError(422, "the upload ended early: the multipart body has no closing boundary.")
    except FormParserError as error:
        raise ApiError(422, f"the upload is not valid multipart/form-data ({error}).") from None
    except ClientDisconnect:
        raise ApiError(400, "the client went away during the upload.") from None
    finally:
        sink.close()
    return sink


def _parse_spec(raw: bytes | None):
    if raw is None:
        data: Any = {}
    else:
        try:
            data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError) as error:
            raise ApiError(422, f"spec is not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise ApiError(422, "spec must be a JSON object, e.g. {\"profile\": \"preview\", \"seed\": 1}.")
    try:
        checked = SpecIn.model_validate(data)
    except ValidationError as error:
        errors = _plain(error.errors(include_url=False))
        raise ApiError(422, "spec " + _validation_sentence(errors), detail=errors) from None
    spec = spec_from_dict(checked.model_dump())
    spec.check()
    return spec


def _assemble(sink: _MultipartSink, limits: Limits) -> pathlib.Path:
    """Where the job's package is: the uploaded zip itself when only a zip came (``ShotPackage``
    reads it in place: no file is unpacked, and none is left to delete when the job ends); else the
    folder ``<job>/package`` holding shot.json, from the ``files`` parts (on top of the zip's
    package, unpacked, when both came)."""
    if sink.has_zip and not sink.paths:
        return sink.zip_path
    package_dir = sink.job_dir / "package"
    if sink.has_zip:
        try:
            root = extract_zip(sink.zip_path, package_dir, limits)
        except EngineInputError:
            raise
        except Exception as error:  # bad CRC, encrypted entries, odd compression…
            if isinstance(error, OSError):
                _storage_error(error)
            raise EngineInputError(f"the zip could not be unpacked ({error}).") from None
        finally:
            sink.zip_path.unlink(missing_ok=True)
        for path in sorted(sink.paths):  # loose files go on top of the zip's package
            target = root / path
            if target.is_dir():
                raise EngineInputError(f"{path} is a folder in the zip but was sent as a file.")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(sink.incoming / path, target)
        shutil.rmtree(sink.incoming, ignore_errors=True)
        return root
    if not sink.paths:
        raise ApiError(422, "send the shot package: a zip as 'package', or its files as 'files'.")
    os.replace(sink.incoming, package_dir)
    found = sorted(package_dir.rglob("shot.json"), key=lambda p: len(p.parts))
    return found[0].parent if found else package_dir


def _load_package(root: pathlib.Path, limits: Limits) -> ShotPackage:
    try:
        return ShotPackage.load(root, limits)
    except EngineInputError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError, cv2.error) as error:
        # package.py reads only what the client sent: anything else it trips on is bad input too
        raise EngineInputError(f"the package could not be read: shot.json or a pass is malformed ({error}).") from None


# -- the results archive ----------------------------------------------------------------------


class _SentWindow:
    """A write-only stream for ``zipfile`` that holds only the bytes not sent yet.

    ``zipfile`` writes a member's header, its data, then seeks back to fill in the header's CRC and
    sizes; it can, because the whole member is still here. ``take()`` (called between members)
    hands out what was written and forgets it, so the archive streams out one member at a time
    with no data descriptors and at most one member in memory.
    """

    def __init__(self):
        self._buffer = io.BytesIO()
        self._sent = 0

    def write(self, data) -> int:
        return self._buffer.write(data)

    def tell(self) -> int:
        return self._sent + self._buffer.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self._sent:
            raise io.UnsupportedOperation("that part of the archive has been sent already")
        self._buffer.seek(offset - self._sent)
        return offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = self._buffer.getvalue()
        self._sent += len(data)
        self._buffer = io.BytesIO()
        return data


def results_archive(files: list[tuple[str, pathlib.Path]]):
    """Yield a ZIP_STORED archive of ``files`` ((name in the archive, file on disk), in that order)
    in pieces. Fixed timestamps and permissions: the same files give the same bytes."""
    window = _SentWindow()
    with zipfile.ZipFile(window, "w", zipfile.ZIP_STORED) as archive:
        for name, path in files:
            with open(path, "rb") as source:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                info.file_size = os.fstat(source.fileno()).st_size  # decides on ZIP64 before writing
                with archive.open(info, "w") as member:
                    shutil.copyfileobj(source, member, ARCHIVE_CHUNK)
            yield window.take()
    yield window.take()  # the central directory


class ZipStream(StreamingResponse):
    media_type = "application/zip"


# -- the data-folder lock ---------------------------------------------------------------------


class DataLock:
    """One server per data folder (an advisory lock on ``<data>/server.lock``, where supported)."""

    def __init__(self, data_dir: pathlib.Path):
        self.path = pathlib.Path(data_dir) / "server.lock"
        self._handle = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock
            return
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RuntimeError(f"another standin-backend is using {self.path.parent}; stop it or pass another --data.")
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# -- the app ----------------------------------------------------------------------------------


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


_ERRORS = {
    400: {"model": ErrorOut, "description": "The package or spec cannot be used; 'error' says why."},
    401: {"model": ErrorOut, "description": "A bearer token is needed."},
    404: {"model": ErrorOut, "description": "No such job or file."},
    409: {"model": ErrorOut, "description": "The job has already finished."},
    413: {"model": ErrorOut, "description": "The upload is larger than the server accepts."},
    415: {"model": ErrorOut, "description": "The body is not multipart/form-data."},
    422: {"model": ErrorOut, "description": "The request is malformed."},
}


def _responses(*codes: int, explicit: bool = False) -> dict:
    """Error responses for the OpenAPI schema; ``explicit`` spells out their JSON content (for routes
    whose own media type is not JSON, which FastAPI would otherwise give their errors too)."""
    if not explicit:
        return {code: _ERRORS[code] for code in codes}
    return {code: {"description": _ERRORS[code]["description"],
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
            for code in codes}


#: one server-sent event (OpenAPI 3.1: the schema of a text/event-stream response describes each event)
_EVENTS_200 = {
    "description": "A stream of events; a comment line every few seconds keeps it open until the job ends.",
    "content": {"text/event-stream": {"schema": {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": ["progress", "done", "failed", "cancelled"]},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "description": "progress: {id, state, step, total, frame, eta_seconds, message, "
                                    "cancel_requested}; done/failed/cancelled (the last event): the job as "
                                    "GET /v1/jobs/{id} returns it"},
        },
    }}},
}

_RESULTS_200 = {
    "description": "A zip (stored, not compressed) of every file in the job's results, each under its "
                   "result path (take01/0001.png…), in the order of the job's results.",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
}
_RESULTS_409 = {
    "description": "The job is not done (queued, running, failed or cancelled): it has no results to download; "
                   "'detail' gives its state.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}

_NOT_DONE = {"queued": "is still queued (follow its events until it is done)",
             "running": "is still running (follow its events until it is done)",
             "failed": "failed", "cancelled": "was cancelled"}

_SUBMIT_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "package": {"type": "string", "format": "binary",
                        "description": "the shot package folder as a .zip (shot.json and the pass folders)"},
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "the package's files, each part's filename its relative path (depth/0001.png)"},
            "spec": {"type": "string",
                     "description": "JSON object of job fields, all optional: profile (preview|final), seed, takes, "
                                    "frames (list of frame numbers), options (engine-specific)",
                     "example": "{\"profile\": \"preview\", \"seed\": 7, \"takes\": 1}"},
        },
    }}},
}


def create_app(engine, data_dir, token: str | None = None, limits: Limits = Limits(), models=None, *,
               paused: bool = False, keep_hours: float = KEEP_HOURS, max_finished: int = MAX_FINISHED,
               heartbeat: float = 5.0, cancel_wait: float = 2.0) -> FastAPI:
    """The API around ``engine``, keeping jobs in ``data_dir``.

    ``paused`` starts the runner without taking jobs (``app.state.runner.resume()`` starts it);
    ``heartbeat`` is the seconds between SSE keep-alive comments; ``cancel_wait`` how long
    ``DELETE`` waits for a running job to stop before answering.
    """
    data_dir = pathlib.Path(data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(data_dir, keep_hours=keep_hours, max_finished=max_finished)
    runner = Runner(store, engine, limits, paused=paused)
    lock = DataLock(data_dir)
    closing = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        lock.acquire()
        closing.clear()
        try:
            store.open()
            store.recover()
            store.cleanup()
            runner.start()
            log.info("standin-backend: engine %s, data in %s", engine.name, data_dir)
            yield
        finally:
            closing.set()
            stopped = await run_in_threadpool(runner.stop, 30.0)
            if stopped:
                store.close()
            else:
                log.warning("the engine did not stop within 30 s; its job is queued again on the next start")
            lock.release()

    app = FastAPI(title="StandIn generation backend", version=backend_version(), lifespan=lifespan,
                  redirect_slashes=False,
                  description=__doc__.split("\n\n")[0])
    app.state.store, app.state.runner, app.state.engine, app.state.limits = store, runner, engine, limits

    # -- errors --

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError):
        return _error(error.status, error.message, error.detail, error.headers)

    @app.exception_handler(EngineInputError)
    async def _input_error(request: Request, error: EngineInputError):
        return _error(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError):
        errors = _plain(list(error.errors()))
        return _error(422, _validation_sentence(errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 404:
            message = f"there is nothing at {request.url.path[:200]}."
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path[:200]}."
        else:
            message = error.detail if isinstance(error.detail, str) else "the request failed."
        return _error(error.status_code, message, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _server_error(request: Request, error: Exception):
        log.error("unexpected error on %s %s: %r (traceback follows from the server)", request.method,
                  request.url.path, error)
        return _error(500, f"internal error: {type(error).__name__}; see the server log.")

    # -- auth --

    dependencies = []
    if token:
        bearer = HTTPBearer(auto_error=False, description="the token given to standin-backend --token")
        expected = token.encode("utf-8")

        async def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
            given = (credentials.credentials if credentials else "").encode("latin-1", "replace")
            if not credentials or not hmac.compare_digest(given, expected):
                raise ApiError(401, "this server needs its token: send 'Authorization: Bearer <token>'.",
                               headers={"WWW-Authenticate": "Bearer"})

        dependencies.append(Depends(require_token))
    v1 = APIRouter(prefix=f"/{API}", dependencies=dependencies)
    auth = (401,) if token else ()

    def find(job_id: str) -> Job:
        job = store.get(job_id)
        if job is None:
            raise ApiError(404, f"there is no job {job_id[:64]!r} (finished jobs are deleted after "
                                f"{store.keep_hours:g} hours).")
        return job

    # -- routes --

    @v1.get("/health", response_model=HealthOut, responses=_responses(*auth), summary="Engine, queue and policy")
    async def health():
        try:
            described = await run_in_threadpool(engine.describe)
            described = json.loads(json.dumps(described, default=str))
            if not isinstance(described, dict):
                described = {"description": described}
        except Exception as error:
            log.exception("engine.describe failed")
            described = {"error": f"describe failed: {error}"}
        counts = await run_in_threadpool(store.counts)
        return {"status": "ok", "api": API, "version": backend_version(), "engine": engine.name,
                "kind": engine.kind, "describe": described, "queue": counts, "cleanup": store.policy(),
                "limits": dataclasses.asdict(limits), "auth": bool(token)}

    @v1.get("/models", response_model=ModelsOut, responses=_responses(*auth), summary="Models on offer")
    async def list_models():
        empty = {"bases": [], "controlnets": [], "loras": [], "ip_adapters": []}
        if models is None:
            return empty
        return {**empty, **(await run_in_threadpool(models.listing))}

    @v1.post("/jobs", status_code=202, response_model=SubmitOut,
             responses=_responses(400, *auth, 413, 415, 422), openapi_extra={"requestBody": _SUBMIT_BODY},
             summary="Submit a shot package")
    async def submit(request: Request):
        job_id = store.new_id()
        job_dir = store.job_dir(job_id)
        queued = False
        try:
            try:
                sink = await _receive_upload(request, job_dir, limits)
            except UploadTooLarge:
                raise ApiError(413, f"the upload is larger than this server accepts "
                                    f"({_size(limits.max_upload_bytes)}): send fewer frames or smaller passes.") from None
            spec = _parse_spec(sink.spec)
            root = await run_in_threadpool(_assemble, sink, limits)
            package = await run_in_threadpool(_load_package, root, limits)
            await run_in_threadpool(engine.check, package, spec)
            runner.prepared(job_id, package, spec_to_dict(spec))  # the runner need not check it again
            await run_in_threadpool(store.add, job_id, engine.name, spec_to_dict(spec), root)
            queued = True
        finally:
            if not queued:  # (synchronously: this also runs when the client went away)
                runner.forget(job_id)
                shutil.rmtree(job_dir, ignore_errors=True)
        runner.wake()
        links = _links(job_id)
        return JSONResponse({"id": job_id, "state": "queued", "links": links}, status_code=202,
                            headers={"Location": links["job"]})

    @v1.get("/jobs/{job_id}", response_model=JobOut, responses=_responses(*auth, 404, 422), summary="A job's state")
    def get_job(job_id: str):
        return job_out(find(job_id))

    @v1.get("/jobs/{job_id}/events", response_class=EventStream,
            responses={200: _EVENTS_200, **_responses(*auth, 404, 422, explicit=True)},
            summary="Server-sent events: progress, then done/failed/cancelled")
    async def job_events(job_id: str):
        await run_in_threadpool(find, job_id)
        loop = asyncio.get_running_loop()
        changes: asyncio.Queue = asyncio.Queue()

        def on_change(job: Job) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(changes.put_nowait, job)

        async def stream():
            unsubscribe = store.subscribe(job_id, on_change)  # before the first read: no change is missed
            try:
                last = None
                current = await run_in_threadpool(store.get, job_id)
                while current is not None:
                    key = (current.state, current.step, current.total, current.frame, current.message,
                           current.cancel_requested)
                    if current.state in FINISHED:
                        yield _sse(current.state, job_out(current))
                        return
                    if key != last:
                        last = key
                        yield _sse("progress", _progress_out(current))
                    try:
                        current = await asyncio.wait_for(changes.get(), timeout=heartbeat)
                    except asyncio.TimeoutError:
                        if closing.is_set():
                            return
                        yield ": keep-alive\n\n"
                        current = await run_in_threadpool(store.get, job_id)
            finally:
                unsubscribe()

        return EventStream(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @v1.get("/jobs/{job_id}/files/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}, "video/mp4": {}, "application/octet-stream": {}},
                             "description": "The file."}, **_responses(*auth, 404, 422)},
            summary="Download one result file")
    def job_file(job_id: str, path: str):
        job = find(job_id)
        missing = ApiError(404, f"job {job_id} has no result file {path[:200]!r}.")
        parts = path.split("/")
        if (job.state != "done" or not path or "\\" in path or "\x00" in path or path.startswith("/")
                or any(part in ("", ".", "..") for part in parts)):
            raise missing
        root = store.result_dir(job_id).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise missing
        return FileResponse(target)

    @v1.get("/jobs/{job_id}/results.zip", response_class=ZipStream,
            responses={200: _RESULTS_200, 409: _RESULTS_409, **_responses(*auth, 404, 422, explicit=True)},
            summary="Download every result file in one zip")
    def job_results(job_id: str):
        job = find(job_id)
        if job.state != "done":
            raise ApiError(409, f"job {job_id} {_NOT_DONE[job.state]}: only a done job has results to download.",
                           detail={"state": job.state})
        root = store.result_dir(job_id).resolve()
        files = []
        for item in job.results:
            target = (root / item["path"]).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                raise ApiError(404, f"the results of job {job_id} are no longer on the server.")
            files.append((item["path"], target))
        return ZipStream(results_archive(files), headers={
            "Content-Disposition": f'attachment; filename="{job_id}-results.zip"', "Cache-Control": "no-store"})

    @v1.delete("/jobs/{job_id}", response_model=JobOut, responses=_responses(*auth, 404, 409, 422),
               summary="Cancel a job")
    async def cancel_job(job_id: str):
        outcome = await run_in_threadpool(store.request_cancel, job_id)
        if outcome is None:
            find(job_id)  # raises the 404
        before, job = outcome
        if before == "queued":
            runner.forget(job_id)
        if before in FINISHED:
            raise ApiError(409, f"job {job_id} has already finished ({before}); nothing to cancel.",
                           detail={"state": before})
        waited = 0.0
        while job is not None and job.state == "running" and waited < cancel_wait:
            await asyncio.sleep(0.05)
            waited += 0.05
            job = await run_in_threadpool(store.get, job_id)
        if job is None:  # removed meanwhile by cleanup
            find(job_id)
        return job_out(job)

    app.include_router(v1)
    return app


__all__ = ["create_app", "ApiError", "DataLock", "job_out", "safe_relative_path"]
