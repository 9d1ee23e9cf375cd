# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP client of the generation backend, standard library only (it runs in Blender's Python).

``BackendClient(url, token=None, timeout=20.0)`` speaks the backend's ``/v1`` API:

- ``health()``, ``models()`` — what the backend is and offers;
- ``submit(package_dir, spec)`` — zips the shot package into a temporary file (PNGs stored, not
  recompressed) and streams it as a multipart body; returns the job (``{id, state, links}``);
- ``job(id)``, ``cancel(id)`` — a job's state; cancel it (a job already finished comes back as is);
- ``events(id)`` — ``(event, data)`` pairs from the job's server-sent events until the final
  ``done``/``failed``/``cancelled``; when the stream breaks or goes quiet it polls the job and
  reopens the stream, and after repeated breaks it keeps polling;
- ``download_results(job, dest)`` — a done job's frames (``0001.png`` by scene frame) and clip
  (``clip.mp4``) into ``dest`` (a ``takes.StagedTake`` or a folder): one ``results.zip`` when the
  server offers it, else file by file; sizes and the zip's CRCs are checked.

Every failure is a ``BackendError`` whose message says what to do (start the backend, fix the URL,
copy the token…) and whose ``kind`` says what happened, for code that reacts differently: never a
bare urllib/socket message. Each request opens its own connection, so one client may be used from
several threads (a worker following a job while another thread cancels it); ``close()`` breaks
every open connection at once (to stop a thread blocked on a quiet stream).

Proxies from the environment are not used: the backend is on this machine or the studio's network.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from typing import Callable, Iterator

from .takes import CLIP_FILE, frame_file

__all__ = ["BackendClient", "BackendError", "FINAL_EVENTS", "KINDS", "normalise_url"]

#: what a ``BackendError`` can be about (its ``kind``)
KINDS = (
    "config",       # the URL itself is unusable
    "unreachable",  # nothing answers at the URL (refused, unknown host)
    "connection",   # the connection broke in the middle of a request
    "timeout",      # no answer in time
    "not_standin",  # something answers, but it is not a StandIn backend
    "token",        # 401: no token, or the wrong one
    "not_found",    # 404 from the backend: no such job or file
    "rejected",     # another 4xx: the backend says what is wrong with the request
    "server",       # 5xx: the backend broke
    "job_failed",   # the job ran and failed; the message is its error
    "download",     # results arrived incomplete or damaged
    "local",        # a problem on this machine (package missing, disk full, local backend failed to start)
    "not_installed",  # the backend program is not installed where it is looked for
    "cancelled",    # stopped on request (``should_stop``)
)
FINAL_EVENTS = ("done", "failed", "cancelled")
CHUNK = 1024 * 1024
#: files zipped without compression: they are compressed already
STORED_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".mp4", ".zip")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BackendError(Exception):
    """Talking to the backend failed; ``str(error)`` is a sentence a person can act on."""

    def __init__(self, message: str, status: int | None = None, kind: str = "server"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind

    def __str__(self) -> str:
        return self.message


def normalise_url(url: str) -> str:
    """``"localhost:8765/v1/"`` → ``"http://localhost:8765"``; ``BackendError`` for what is no address."""
    text = (url or "").strip()
    if not text:
        raise BackendError("no backend URL is set: enter one in Project ▸ Backend URL "
                           "(e.g. http://127.0.0.1:8765) or press Start local backend.", kind="config")
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"{url!r} is not a backend address: use http://host:port, e.g. http://127.0.0.1:8765 "
                           f"(Project ▸ Backend URL).", kind="config")
    try:
        parts.port  # noqa: B018  (raises for a port that is no number)
    except ValueError:
        raise BackendError(f"the port in {url!r} is not a number: use http://host:port "
                           f"(Project ▸ Backend URL).", kind="config") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _Destination:
    """Where downloaded results go: a ``StagedTake`` (its ``path``) or a plain folder."""

    def __init__(self, dest):
        if hasattr(dest, "path") and callable(dest.path):
            self._path = dest.path
        else:
            folder = pathlib.Path(dest)

            def inside(relative: str) -> pathlib.Path:
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                return target

            self._path = inside

    def path(self, relative: str) -> pathlib.Path:
        return self._path(relative)


class BackendClient:
    """The backend at ``url`` (``http://host:port``); ``token`` for a backend started with --token;
    ``timeout`` seconds for any one answer (an upload's answer gets ``upload_timeout``)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 20.0, upload_timeout: float = 300.0):
        self.url = normalise_url(url)
        self.token = token or None
        self.timeout = float(timeout)
        self.upload_timeout = max(float(upload_timeout), self.timeout)
        parts = urllib.parse.urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path  # a backend behind a path (https://studio/standin)
        self._open: set[http.client.HTTPConnection] = set()
        self._open_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"BackendClient({self.url!r}{', token=…' if self.token else ''})"

    # -- the API -----------------------------------------------------------------------------

    def health(self) -> dict:
        """The backend's ``/v1/health``; ``BackendError`` (``not_standin``) if the URL is something else."""
        data = self._json("GET", "/v1/health", doing="asking for its health", probing=True)
        if not isinstance(data, dict) or data.get("api") != "v1" or data.get("status") != "ok":
            raise self._not_standin("its /v1/health answer is not a StandIn backend's")
        return data

    def models(self) -> dict:
        """Base models, ControlNets, LoRAs and IP-Adapters the backend offers (lists, maybe empty)."""
        return self._json("GET", "/v1/models", doing="listing its models")

    def job(self, job_id: str) -> dict:
        """The job as ``GET /v1/jobs/{id}`` returns it; ``BackendError`` ``not_found`` for an unknown id."""
        return self._json("GET", f"/v1/jobs/{_quote(job_id)}", doing=f"asking about job {job_id}")

    def cancel(self, job_id: str) -> dict:
        """Cancel the job; returns it. A job that has already finished is returned as it is (no error)."""
        try:
            return self._json("DELETE", f"/v1/jobs/{_quote(job_id)}", doing=f"cancelling job {job_id}")
        except BackendError as error:
            if error.status == 409:
                return self.job(job_id)
            raise

    def submit(self, package_dir, spec: dict, *, progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
        """Send the shot package in ``package_dir`` with ``spec`` ({profile, seed, takes, frames, options});
        returns ``{id, state, links}``. ``progress(sent, total)`` follows the upload; ``should_stop``
        returning True abandons it (``BackendError`` kind ``cancelled``)."""
        package_dir = pathlib.Path(package_dir)
        if not (package_dir / "shot.json").is_file():
            raise BackendError(f"there is no shot package in {package_dir} (no shot.json): render the shot's "
                               f"passes first.", kind="local")
        try:
            spec_json = json.dumps(spec)
        except (TypeError, ValueError) as error:
            raise BackendError(f"the job's settings cannot be sent ({error}).", kind="local") from None
        archive = self._zip_package(package_dir)
        try:
            boundary = "standin-" + uuid.uuid4().hex
            head = (f"--{boundary}\r\n"
                    f'Content-Disposition: form-data; name="spec"\r\n'
                    f"Content-Type: application/json\r\n\r\n"
                    f"{spec_json}\r\n"
                    f"--{boundary}\r\n"
                    f'Content-Disposition: form-data; name="package"; filename="{package_dir.name or "shot"}.zip"\r\n'
                    f"Content-Type: application/zip\r\n\r\n").encode("utf-8")
            tail = f"\r\n--{boundary}--\r\n".encode("ascii")
            total = len(head) + archive.stat().st_size + len(tail)

            def pieces() -> Iterator[bytes]:
                yield head
                with open(archive, "rb") as source:
                    while chunk := source.read(CHUNK):
                        yield chunk
                yield tail

            def body() -> Iterator[bytes]:
                sent = 0
                for piece in pieces():
                    if should_stop is not None and should_stop():
                        raise BackendError("the upload was cancelled.", kind="cancelled")
                    yield piece
                    sent += len(piece)
                    if progress is not None:
                        progress(sent, total)

            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(total)}
            return self._json("POST", "/v1/jobs", body=body(), headers=headers, timeout=self.upload_timeout,
                              doing="receiving the shot package")
        finally:
            archive.unlink(missing_ok=True)

    def events(self, job_id: str, *, read_timeout: float = 30.0, poll_interval: float = 0.5,
               should_stop: Callable[[], bool] | None = None, max_stream_failures: int = 3,
               unreachable_grace: float = 10.0) -> Iterator[tuple[str, dict]]:
        """``(event, data)`` until the job ends: ``("progress", {step, total, frame, eta_seconds, message…})``
        and last one of ``("done"|"failed"|"cancelled", job)``.

        The server-sent event stream is read with ``read_timeout`` (the server sends a keep-alive
        every few seconds). When the stream breaks, ends early or goes quiet, the job is polled once
        (yielding its progress, or its end) and the stream reopened; after ``max_stream_failures``
        breaks in a row it only polls, every ``poll_interval`` seconds. A backend that stops
        answering for longer than ``unreachable_grace`` seconds raises. ``should_stop`` returning
        True ends the generator early (no final event)."""
        stop = should_stop or (lambda: False)
        failures, unreachable_since, streaming = 0, None, True
        while not stop():
            if streaming:
                try:
                    for event, data in self._stream_events(job_id, read_timeout):
                        failures = 0
                        yield event, data
                        if event in FINAL_EVENTS:
                            return
                except BackendError as error:
                    if error.kind not in ("connection", "timeout", "unreachable", "not_standin"):
                        raise
                failures += 1
                streaming = failures < max_stream_failures
                if stop():
                    return
            try:
                job = self.job(job_id)
                unreachable_since = None
            except BackendError as error:
                if error.kind not in ("connection", "timeout", "unreachable"):
                    raise
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > unreachable_grace:
                    raise
                time.sleep(poll_interval)
                continue
            if job.get("state") in FINAL_EVENTS:
                yield job["state"], job
                return
            yield "progress", _progress_of(job)
            time.sleep(poll_interval)

    def download_results(self, job: dict, dest, *, take: int = 1, should_stop: Callable[[], bool] | None = None,
                         progress: Callable[[int, int], None] | None = None) -> dict[str, pathlib.Path]:
        """The frames (``0001.png``… by scene frame) and clip (``clip.mp4``) of take ``take`` of a done
        ``job`` into ``dest``; plates are left out. Returns ``{name: path}``. ``BackendError`` kind
        ``download`` when a file arrives short or damaged (what was written stays in ``dest``: throw
        a staging folder away)."""
        if job.get("state") != "done":
            raise BackendError(f"job {job.get('id')} is {job.get('state')}, not done: there is nothing to download.",
                               kind="rejected")
        wanted = _wanted_results(job, take)
        if not wanted:
            raise BackendError(f"job {job['id']} finished without any frames for take {take}: the engine made "
                               f"nothing to download; see the backend's log.", kind="job_failed")
        destination = _Destination(dest)
        stop = should_stop or (lambda: False)
        archive_url = _results_zip_url(job)
        if archive_url is not None:
            written = self._download_zip(job, archive_url, wanted, destination, stop, progress)
            if written is not None:
                return written
        written = {}
        for done, (result_path, (name, url)) in enumerate(sorted(wanted.items()), start=1):
            if stop():
                raise BackendError("the download was cancelled.", kind="cancelled")
            target = destination.path(name)
            self._download_file(url, target, f"{result_path} of job {job['id']}")
            written[name] = target
            if progress is not None:
                progress(done, len(wanted))
        return written

    def close(self) -> None:
        """Break every connection this client has open (a thread blocked on a quiet event stream
        returns at once) and refuse new requests (``BackendError`` kind ``cancelled``)."""
        with self._open_lock:
            self._closed = True
            connections = list(self._open)
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- downloads ----------------------------------------------------------------------------

    def _download_zip(self, job, archive_url, wanted, destination, stop, progress) -> dict | None:
        """All results through one ``results.zip``; None when the server does not offer it."""
        scratch = destination.path(".results-download.zip")
        try:
            try:
                self._download_file(archive_url, scratch, f"the results of job {job['id']}")
            except BackendError as error:
                if error.status == 404:
                    return None
                raise
            if stop():
                raise BackendError("the download was cancelled.", kind="cancelled")
            return _unpack_results(scratch, wanted, destination, job["id"], progress)
        finally:
            scratch.unlink(missing_ok=True)

    def _download_file(self, url: str, target: pathlib.Path, what: str) -> None:
        """One file into ``target``, checked against its Content-Length (and PNG signature)."""
        connection, response = self._open_response("GET", url, doing=f"sending {what}", accept="*/*")
        try:
            expected = response.getheader("Content-Length")
            received = 0
            try:
                sink = open(target, "wb")
            except OSError as error:
                raise _cannot_write(target, error) from None
            with sink:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as error:
                        raise BackendError(f"the download of {what} broke off after {received} bytes "
                                           f"({_reason(error)}): the backend stopped or the connection dropped; "
                                           f"try again.", kind="download") from None
                    if not chunk:
                        break
                    try:
                        sink.write(chunk)
                    except OSError as error:
                        raise _cannot_write(target, error) from None
                    received += len(chunk)
            if expected is not None and expected.isdigit() and int(expected) != received:
                raise BackendError(f"the download of {what} broke off ({received} of {expected} bytes): the backend "
                                   f"stopped or the connection dropped; try again.", kind="download")
            if target.suffix == ".png":
                with open(target, "rb") as written:
                    if written.read(8) != _PNG_SIGNATURE:
                        raise BackendError(f"{what} did not arrive as a PNG: the backend sent something else; see "
                                           f"its log.", kind="download")
        finally:
            self._close(connection)

    # -- the package ---------------------------------------------------------------------------

    @staticmethod
    def _zip_package(package_dir: pathlib.Path) -> pathlib.Path:
        """The package folder as a temporary zip (PNGs stored as they are, text deflated)."""
        handle, name = tempfile.mkstemp(prefix="standin-package-", suffix=".zip")
        os.close(handle)
        archive = pathlib.Path(name)
        try:
            with zipfile.ZipFile(archive, "w", allowZip64=True) as bundle:
                for path in sorted(package_dir.rglob("*")):
                    relative = path.relative_to(package_dir)
                    if not path.is_file() or any(part.startswith(".") for part in relative.parts):
                        continue
                    stored = path.suffix.lower() in STORED_SUFFIXES
                    bundle.write(path, relative.as_posix(),
                                 compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        except OSError as error:
            archive.unlink(missing_ok=True)
            raise BackendError(f"cannot pack the shot package {package_dir} ({error.strerror or error}): check the "
                               f"temporary folder has space.", kind="local") from None
        return archive

    # -- HTTP ----------------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, doing: str, body=None, headers: dict | None = None,
              timeout: float | None = None, probing: bool = False):
        connection, response = self._open_response(method, path, doing=doing, body=body, headers=headers,
                                                   timeout=timeout, probing=probing)
        try:
            raw = self._read_all(response, doing)
        finally:
            self._close(connection)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._not_standin(f"it answered {doing} with something that is not JSON") from None

    def _open_response(self, method: str, path: str, *, doing: str, body=None, headers: dict | None = None,
                       timeout: float | None = None, probing: bool = False,
                       accept: str = "application/json") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request; a 2xx response (open, to be read) or ``BackendError``."""
        if path.startswith(("http://", "https://")):  # an absolute link: same server, its whole path
            split = urllib.parse.urlsplit(path)
            target = split.path + (f"?{split.query}" if split.query else "")
        else:
            target = self._prefix + (path if path.startswith("/") else "/" + path)
        connection = self._connect(timeout or self.timeout)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            all_headers = {"Accept": accept, "User-Agent": "StandIn-Blender", **(headers or {})}
            if self.token:
                all_headers["Authorization"] = f"Bearer {self.token}"
            if body is None and method in ("POST", "PUT"):
                all_headers["Content-Length"] = "0"
            for name, value in all_headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            if body is not None:
                try:
                    for chunk in body:
                        connection.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered before taking it all (413, 401): read its answer below
            response = connection.getresponse()
        except BackendError:
            self._close(connection)
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            self._close(connection)
            raise self._network_error(error, doing) from None
        if 200 <= response.status < 300:
            return connection, response
        try:
            raw = self._read_all(response, doing, limit=64 * 1024)
        except BackendError:
            raw = b""
        finally:
            self._close(connection)
        raise self._http_error(response.status, raw, response.getheader("Location"), doing, probing)

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                                     context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        with self._open_lock:
            if self._closed:
                raise BackendError("the connection to the backend was closed.", kind="cancelled")
            self._open.add(connection)
        return connection

    def _close(self, connection: http.client.HTTPConnection) -> None:
        with self._open_lock:
            self._open.discard(connection)
        connection.close()

    def _read_all(self, response: http.client.HTTPResponse, doing: str, limit: int | None = None) -> bytes:
        try:
            return response.read(limit) if limit else response.read()
        except (OSError, http.client.HTTPException) as error:
            raise self._network_error(error, doing) from None

    def _stream_events(self, job_id: str, read_timeout: float) -> Iterator[tuple[str, dict]]:
        """One pass over the job's event stream; ends (without a final event) if the stream does."""
        doing = f"streaming the progress of job {job_id}"
        connection, response = self._open_response("GET", f"/v1/jobs/{_quote(job_id)}/events", doing=doing,
                                                   timeout=read_timeout, accept="text/event-stream")
        try:
            if not (response.getheader("Content-Type") or "").startswith("text/event-stream"):
                raise self._not_standin("its event stream is not text/event-stream")
            event, data_lines = "message", []
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as error:
                    raise self._network_error(error, doing) from None
                if not line:
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text:
                    if text.startswith(":"):
                        continue
                    field, _, value = text.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data_lines.append(value)
                    continue
                if data_lines:
                    try:
                        data = json.loads("\n".join(data_lines))
                    except ValueError:
                        raise self._not_standin("its event stream carries something that is not JSON") from None
                    yield event, data
                event, data_lines = "message", []
        finally:
            self._close(connection)

    # -- errors --------------------------------------------------------------------------------

    def _not_standin(self, why: str) -> BackendError:
        return BackendError(f"the server at {self.url} is not a StandIn backend ({why}): check the address and port "
                            f"in Project ▸ Backend URL.", kind="not_standin")

    def _network_error(self, error: BaseException, doing: str) -> BackendError:
        if isinstance(error, (TimeoutError, socket.timeout)):
            return BackendError(f"the backend at {self.url} did not answer in time while {doing}: it may be busy or "
                                f"stuck; check it is running, or raise Project ▸ Time-out.", kind="timeout")
        if isinstance(error, ConnectionRefusedError):
            return BackendError(f"no StandIn backend answers at {self.url}: start it with `standin-backend serve` or "
                                f"press Start local backend.", kind="unreachable")
        if isinstance(error, socket.gaierror):
            return BackendError(f"the backend's host {self._host!r} cannot be found: check Project ▸ Backend URL "
                                f"({self.url}).", kind="unreachable")
        if isinstance(error, ssl.SSLError):
            return BackendError(f"a secure connection to {self.url} failed ({_reason(error)}): check the address "
                                f"(http:// or https://) in Project ▸ Backend URL.", kind="connection")
        if isinstance(error, OSError) and error.errno is not None and not isinstance(
                error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return BackendError(f"no StandIn backend can be reached at {self.url} ({_reason(error)}): check it is "
                                f"running and Project ▸ Backend URL is right.", kind="unreachable")
        return BackendError(f"the connection to the backend at {self.url} broke while {doing} ({_reason(error)}): "
                            f"try again; if it keeps happening, see the backend's log.", kind="connection")

    def _http_error(self, status: int, raw: bytes, location: str | None, doing: str, probing: bool) -> BackendError:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        sentence = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
        if status == 401:
            if self.token:
                message = ("the backend refused the token: copy it from the backend's --token into "
                           "Project ▸ Backend token.")
            else:
                message = (f"the backend at {self.url} needs a token: copy it from the backend's --token into "
                           f"Project ▸ Backend token.")
            return BackendError(message, status, kind="token")
        if 300 <= status < 400:
            where = f" to {location}" if location else ""
            return BackendError(f"the server at {self.url} redirects{where}: put the backend's own address in "
                                f"Project ▸ Backend URL.", status, kind="not_standin")
        if sentence is None or probing and status == 404:
            if status >= 500:
                return BackendError(f"the backend at {self.url} failed while {doing} (HTTP {status}): see the "
                                    f"backend's log, or restart it.", status, kind="server")
            return BackendError(f"the server at {self.url} is not a StandIn backend (HTTP {status} while {doing}): "
                                f"check the address and port in Project ▸ Backend URL.", status, kind="not_standin")
        if status >= 500:
            return BackendError(f"the backend failed while {doing} (HTTP {status}): {sentence} See the backend's "
                                f"log, or restart it.", status, kind="server")
        if status == 404:
            return BackendError(f"the backend answered: {sentence}", status, kind="not_found")
        return BackendError(f"the backend refused the request: {sentence}", status, kind="rejected")


# -- helpers ----------------------------------------------------------------------------------


def _quote(job_id: str) -> str:
    return urllib.parse.quote(str(job_id), safe="")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _cannot_write(target: pathlib.Path, error: OSError) -> BackendError:
    return BackendError(f"cannot write {target} ({error.strerror or error}): check the disk has space and the "
                        f"output folder can be written.", kind="local")


def _progress_of(job: dict) -> dict:
    keys = ("id", "state", "step", "total", "frame", "eta_seconds", "message", "cancel_requested")
    return {key: job.get(key) for key in keys}


def _wanted_results(job: dict, take: int) -> dict[str, tuple[str, str]]:
    """``{result path: (name in the take folder, URL)}`` of one take's frames and clip."""
    files_prefix = job.get("links", {}).get("files") or f"/v1/jobs/{_quote(job['id'])}/files/"
    wanted = {}
    for result in job.get("results") or []:
        if result.get("take") != take:
            continue
        if result.get("kind") == "frame" and isinstance(result.get("frame"), int):
            name = frame_file(result["frame"])
        elif result.get("kind") == "clip":
            name = CLIP_FILE
        else:
            continue  # plates: the backend's own cache
        path = result["path"]
        wanted[path] = (name, result.get("url") or files_prefix + urllib.parse.quote(path))
    return wanted


def _results_zip_url(job: dict) -> str | None:
    """The URL of the job's ``results.zip``: from its links when listed, else where the API puts it."""
    for link in (job.get("links") or {}).values():
        if isinstance(link, str) and link.split("?")[0].endswith("/results.zip"):
            return link
    return f"/v1/jobs/{_quote(job['id'])}/results.zip"


def _unpack_results(archive: pathlib.Path, wanted: dict, destination: _Destination, job_id: str,
                    progress: Callable[[int, int], None] | None) -> dict[str, pathlib.Path]:
    """Take the wanted entries out of a results zip, checking each one's CRC and size."""
    written = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            entries = {}
            for info in bundle.infolist():
                for path in wanted:
                    if info.filename == path or info.filename.endswith("/" + path):
                        entries[path] = info
            missing = sorted(set(wanted) - set(entries))
            if missing:
                raise BackendError(f"the results of job {job_id} arrived without {missing[0]} "
                                   f"({len(missing)} files missing): try again; if it keeps happening, see the "
                                   f"backend's log.", kind="download")
            for done, (path, info) in enumerate(sorted(entries.items()), start=1):
                name = wanted[path][0]
                target = destination.path(name)
                with bundle.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, CHUNK)  # reading to the end checks the CRC
                if target.stat().st_size != info.file_size:
                    raise BackendError(f"{path} of job {job_id} unpacked to the wrong size: try again.",
                                       kind="download")
                written[name] = target
                if progress is not None:
                    progress(done, len(entries))
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise BackendError(f"the results of job {job_id} arrived damaged ({error}): try again; if it keeps "
                           f"happening, see the backend's log.", kind="download") from None
    except OSError as error:
        raise BackendError(f"cannot write the results of job {job_id} ({error.strerror or error}): check the disk "
                           f"has space and the output folder can be written.", kind="local") from None
    return written
