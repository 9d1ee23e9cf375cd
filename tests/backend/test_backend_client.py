# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender-side HTTP client (``addon/backend_client.py``, standard library only) against a real
backend on 127.0.0.1, and against the things a user may point it at by mistake: nothing (an unused
port), a web server that is not StandIn, a server that never answers. Every failure must be one
``BackendError`` with a sentence that says what to do.
"""

import contextlib
import dataclasses
import functools
import http.server
import itertools
import io
import json
import socket
import threading
import time
import zipfile

import pytest

from standin.addon.backend_client import BackendClient, BackendError, normalise_url
from standin.addon.local_backend import free_port
from standin.addon.takes import StagedTake
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.local_server import LiveServer
from standin.ai_backend.server import create_app

TOKEN = "s3cret-token"


class PacedSketchEngine(SketchEngine):
    """The sketch engine, ``delay`` seconds a frame; the job option ``fail_at`` (a step number) makes
    it fail there as a broken engine would (RuntimeError → the job is ``failed``)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    @staticmethod
    def _sketch_spec(spec):
        return dataclasses.replace(spec, options={k: v for k, v in spec.options.items() if k != "fail_at"})

    def check(self, package, spec):
        super().check(package, self._sketch_spec(spec))

    def run(self, package, spec, out_dir, progress):
        fail_at = spec.options.get("fail_at")

        def paced(update):
            progress(update)
            if fail_at is not None and update.step >= fail_at:
                raise RuntimeError("CUDA out of memory (from the test)")
            time.sleep(self.delay)

        return super().run(package, self._sketch_spec(spec), out_dir, paced)


@pytest.fixture
def serve(serve, tmp_path):
    """``serve(engine=None, token=None) -> LiveServer`` with its own data folder (conftest's ``serve``
    stops it at teardown)."""
    started = itertools.count()

    def start(engine=None, token=None, **options) -> LiveServer:
        data_dir = tmp_path / f"backend-data-{next(started)}"
        return serve(create_app(engine or SketchEngine(), data_dir, token=token, **options))

    return start


@pytest.fixture
def plain_http(tmp_path):
    """``plain_http(handler_class) -> url``: a stdlib HTTP server on 127.0.0.1; stopped at teardown."""
    servers = []

    def start(handler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def scripted_handler(routes: dict):
    """A handler answering ``routes[path] = (status, content_type, body, send_only)`` (``send_only``:
    how many bytes of the body to send after announcing all of them, then hang up; None = all)."""

    class Scripted(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            status, content_type, body, send_only = routes.get(self.path, (404, "text/html", b"<h1>nope</h1>", None))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if send_only is None else body[:send_only])
            self.close_connection = True

    return Scripted


def follow(client: BackendClient, job_id: str, **options) -> list:
    events = list(client.events(job_id, **options))
    assert events and events[-1][0] in ("done", "failed", "cancelled"), events
    return events


def expect_error(kind: str, *needles: str, status=None):
    """A context that expects one BackendError of ``kind`` whose message holds every needle."""

    class Expect:
        def __enter__(self):
            return self

        def __exit__(self, error_type, error, trace):
            got = error_type.__name__ if error_type else "no error"
            assert error_type is BackendError, f"expected a BackendError, got {got}"
            assert error.kind == kind, (error.kind, str(error))
            for needle in needles:
                assert needle in str(error), str(error)
            assert "Traceback" not in str(error) and "urlopen" not in str(error) and "Errno" not in str(error)
            if status is not None:
                assert error.status == status
            self.error = error
            return True

    return Expect()


# -- the happy path ---------------------------------------------------------------------------


def test_health_models_and_urls(serve):
    server = serve()
    client = BackendClient(server.url + "/v1/")  # as a user may paste it
    assert client.url == server.url
    health = client.health()
    assert health["engine"] == "sketch" and health["api"] == "v1" and health["auth"] is False
    assert set(client.models()) >= {"bases", "controlnets", "loras", "ip_adapters"}
    assert normalise_url("localhost:8765") == "http://localhost:8765"
    with expect_error("config", "Project ▸ Backend URL"):
        BackendClient("ftp://example.com")
    with expect_error("config", "Project ▸ Backend URL"):
        BackendClient("")


def test_submit_follow_and_download_into_a_staged_take(serve, make_package, tmp_path):
    server = serve(PacedSketchEngine(delay=0.1))  # paced: the stream opens before the job ends
    client = BackendClient(server.url)
    package = make_package(frames=3, frame_start=101)
    job = client.submit(package, {"seed": 5, "takes": 1, "profile": "preview"})
    assert job["state"] == "queued" and job["id"]

    events = follow(client, job["id"])
    name, final = events[-1]
    assert name == "done", final
    progress = [data for event, data in events if event == "progress"]
    assert progress and all(data["total"] == 3 for data in progress if data["total"])
    assert [data["step"] for data in progress] == sorted(data["step"] for data in progress)

    staging = StagedTake(tmp_path / "SQ010_SH0010")
    written = client.download_results(final, staging)
    assert sorted(written) == ["0101.png", "0102.png", "0103.png"]  # named by scene frame
    results = server.app.state.store.result_dir(job["id"])
    for frame in (101, 102, 103):
        assert (staging.folder / f"{frame:04d}.png").read_bytes() == (results / f"take01/{frame:04d}.png").read_bytes()
    assert sorted(p.name for p in staging.folder.iterdir()) == ["0101.png", "0102.png", "0103.png"]  # no scratch left
    assert client.job(job["id"])["spec"]["seed"] == 5


def test_the_package_travels_as_one_zip_with_pngs_stored(make_package):
    package = make_package(frames=2)
    (package / ".hidden-staging").mkdir()
    (package / ".hidden-staging" / "junk.png").write_bytes(b"junk")
    archive = BackendClient._zip_package(package)
    try:
        with zipfile.ZipFile(archive) as bundle:
            entries = {info.filename: info for info in bundle.infolist()}
            assert bundle.testzip() is None
    finally:
        archive.unlink()
    assert "shot.json" in entries and "depth/0001.png" in entries and "mask/Mara/0002.png" in entries
    assert not any(name.startswith(".hidden") for name in entries)
    assert all(info.compress_type == zipfile.ZIP_STORED for name, info in entries.items() if name.endswith(".png"))
    assert entries["shot.json"].compress_type == zipfile.ZIP_DEFLATED
    assert not archive.exists()


def test_events_fall_back_to_polling_when_the_stream_goes_quiet(serve, make_package):
    # frames take 0.3 s and the stream's read time-out is 0.1 s: every stream read times out
    server = serve(PacedSketchEngine(delay=0.3))
    client = BackendClient(server.url)
    job = client.submit(make_package(frames=4), {"seed": 1})
    events = follow(client, job["id"], read_timeout=0.1, poll_interval=0.05)
    assert events[-1][0] == "done" and len(events[-1][1]["results"]) == 4
    steps = [data["step"] for event, data in events if event == "progress"]
    assert steps == sorted(steps) and max(steps) >= 1


def test_cancel_a_running_job(serve, make_package, tmp_path):
    server = serve(PacedSketchEngine(delay=0.05))
    client = BackendClient(server.url)
    job_id = client.submit(make_package(frames=60), {"seed": 1})["id"]
    with contextlib.closing(client.events(job_id)) as events:
        for event, data in events:
            if event == "progress" and data["step"] >= 1:
                break
    cancelled = client.cancel(job_id)
    assert cancelled["cancel_requested"] is True
    name, final = follow(client, job_id)[-1]
    assert name == "cancelled" and final["step"] < 60
    assert client.cancel(job_id)["state"] == "cancelled"  # finished: returned as is, no error
    with expect_error("rejected", "not done"):
        client.download_results(final, StagedTake(tmp_path / "shot"))


def test_a_failed_job_ends_the_events_with_its_error(serve, make_package):
    server = serve(PacedSketchEngine())
    client = BackendClient(server.url)
    job_id = client.submit(make_package(frames=3), {"options": {"fail_at": 1}})["id"]
    name, final = follow(client, job_id)[-1]
    assert name == "failed" and "CUDA out of memory" in final["error"]


# -- what goes wrong --------------------------------------------------------------------------


def test_the_token(serve):
    server = serve(token=TOKEN)
    with expect_error("token", "needs a token", "Project ▸ Backend token", status=401):
        BackendClient(server.url).health()
    with expect_error("token", "refused the token", "--token", "Project ▸ Backend token", status=401):
        BackendClient(server.url, token="wrong").models()
    assert BackendClient(server.url, token=TOKEN).health()["auth"] is True


def test_no_backend_at_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with expect_error("unreachable", f"no StandIn backend answers at {url}", "standin-backend serve",
                      "Start local backend"):
        BackendClient(url).health()


def test_a_web_server_that_is_not_standin(plain_http, tmp_path):
    site = tmp_path / "site"
    (site / "v1").mkdir(parents=True)
    plain = plain_http(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site)))
    with expect_error("not_standin", "not a StandIn backend", "HTTP 404", "Project ▸ Backend URL"):
        BackendClient(plain).health()
    (site / "v1" / "health").write_text("<html>hello</html>")
    with expect_error("not_standin", "not a StandIn backend", "not JSON", "Project ▸ Backend URL"):
        BackendClient(plain).health()
    (site / "v1" / "health").write_text('{"status": "ok"}')
    with expect_error("not_standin", "not a StandIn backend"):
        BackendClient(plain).health()


def test_a_server_that_never_answers():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # connections wait in the backlog, nobody answers
    try:
        started = time.monotonic()
        with expect_error("timeout", "did not answer in time", "Time-out"):
            BackendClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3).health()
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_refused_requests_carry_the_servers_sentence(serve, make_package, tmp_path):
    server = serve()
    client = BackendClient(server.url)
    with expect_error("rejected", "the backend refused the request", "frames [99]", status=400):
        client.submit(make_package(frames=2), {"frames": [99]})
    with expect_error("rejected", "takes", status=400):
        client.submit(make_package(frames=2), {"takes": 99})
    with expect_error("local", "no shot.json", "render the shot's passes"):
        client.submit(tmp_path / "nowhere", {})
    with expect_error("not_found", "no job", status=404):
        client.job("0" * 32)
    with expect_error("not_found", "no job", status=404):
        client.cancel("0" * 32)
    assert server.app.state.store.counts()["queued"] == 0


def test_server_errors(plain_http):
    url = plain_http(scripted_handler({
        "/v1/health": (500, "application/json", json.dumps({"error": "internal error: OperationalError; see the "
                                                                     "server log."}).encode(), None),
        "/v1/models": (502, "text/html", b"<h1>Bad Gateway</h1>", None),
    }))
    with expect_error("server", "HTTP 500", "OperationalError", "backend's log", status=500):
        BackendClient(url).health()
    with expect_error("server", "HTTP 502", "backend's log", status=502):
        BackendClient(url).models()


# -- downloads that must not be trusted -------------------------------------------------------


def done_job(job_id: str, frames) -> dict:
    return {"id": job_id, "state": "done", "engine": "sketch",
            "links": {"job": f"/v1/jobs/{job_id}", "events": f"/v1/jobs/{job_id}/events",
                      "files": f"/v1/jobs/{job_id}/files/"},
            "results": [{"path": f"take01/{f:04d}.png", "take": 1, "frame": f, "kind": "frame",
                         "url": f"/v1/jobs/{job_id}/files/take01/{f:04d}.png"} for f in frames]
                       + [{"path": "plates/set.png", "take": 1, "frame": None, "kind": "plate",
                           "url": f"/v1/jobs/{job_id}/files/plates/set.png"}]}


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def results_zip(names) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            archive.writestr(name, PNG)
    return buffer.getvalue()


def test_results_zip_is_used_when_offered_and_checked(plain_http, tmp_path):
    good = results_zip(["take01/0007.png", "take01/0008.png", "plates/set.png"])
    damaged = bytearray(good)
    damaged[good.index(PNG) + 100] ^= 0xFF  # one flipped byte inside the first file's data
    url = plain_http(scripted_handler({
        "/v1/jobs/good/results.zip": (200, "application/zip", good, None),
        "/v1/jobs/damaged/results.zip": (200, "application/zip", bytes(damaged), None),
        "/v1/jobs/short/results.zip": (200, "application/zip", good, len(good) // 2),
    }))
    client = BackendClient(url)

    staging = StagedTake(tmp_path / "shot")
    written = client.download_results(done_job("good", [7, 8]), staging)
    assert sorted(written) == ["0007.png", "0008.png"]  # the plate stays on the backend
    assert (staging.folder / "0007.png").read_bytes() == PNG
    assert sorted(p.name for p in staging.folder.iterdir()) == ["0007.png", "0008.png"]

    with expect_error("download", "arrived damaged", "try again"):
        client.download_results(done_job("damaged", [7, 8]), StagedTake(tmp_path / "shot"))
    with expect_error("download", "broke off", "try again"):
        client.download_results(done_job("short", [7, 8]), StagedTake(tmp_path / "shot"))


def test_files_one_by_one_are_checked_when_there_is_no_zip(plain_http, tmp_path):
    url = plain_http(scripted_handler({
        "/v1/jobs/ok/files/take01/0003.png": (200, "image/png", PNG, None),
        "/v1/jobs/cut/files/take01/0003.png": (200, "image/png", PNG, 100),
        "/v1/jobs/html/files/take01/0003.png": (200, "image/png", b"<html>login</html>", None),
    }))
    client = BackendClient(url)
    staging = StagedTake(tmp_path / "shot")
    assert list(client.download_results(done_job("ok", [3]), staging)) == ["0003.png"]
    assert (staging.folder / "0003.png").read_bytes() == PNG
    client.download_results(done_job("ok", [3]), tmp_path / "a" / "plain" / "folder")  # not only a StagedTake
    assert (tmp_path / "a" / "plain" / "folder" / "0003.png").read_bytes() == PNG
    with expect_error("download", "broke off", f"100 of {len(PNG)} bytes", "try again"):
        client.download_results(done_job("cut", [3]), StagedTake(tmp_path / "shot"))
    with expect_error("download", "not arrive as a PNG"):
        client.download_results(done_job("html", [3]), StagedTake(tmp_path / "shot"))


def test_an_upload_can_be_abandoned(serve, make_package):
    server = serve()
    sent = []
    with expect_error("cancelled", "upload was cancelled"):
        BackendClient(server.url).submit(make_package(), {}, progress=lambda done, total: sent.append(done),
                                         should_stop=lambda: bool(sent))  # stop after the first piece
    assert len(sent) == 1
    time.sleep(0.2)
    assert sum(server.app.state.store.counts().values()) == 0  # the backend made no job of it
