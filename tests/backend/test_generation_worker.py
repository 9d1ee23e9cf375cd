# SPDX-License-Identifier: GPL-3.0-or-later
"""The generation worker (``addon/generation_job.py``) against a real backend on 127.0.0.1: requests
become takes ``v001``, ``v002``… with frames named by scene frame and a complete take.json; errors,
cancels, broken downloads and lost jobs become updates with a sentence, and never a take.
"""

import datetime
import http.client
import http.server
import json
import threading
import time
import urllib.parse

import pytest

from standin.addon.backend_client import BackendClient
from standin.addon.generation_job import GenerationRequest, GenerationWorker
from standin.addon.local_backend import free_port
from standin.addon.takes import complete_takes, read_take

from backend.test_backend_client import TOKEN, PacedSketchEngine, serve  # noqa: F401  (fixture)

SHOT = "SQ010_SH0010"
FINAL = ("done", "failed", "cancelled", "lost")


@pytest.fixture
def workers():
    """``workers(url, token=None) -> GenerationWorker``; every worker is closed at teardown."""
    made = []

    def make(url: str, token: str | None = None, **options) -> GenerationWorker:
        worker = GenerationWorker(lambda: BackendClient(url, token, timeout=10), **options)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close(timeout=10)


def request_for(package, shot_dir, seed: int = 7, shot: str = SHOT, **extra) -> GenerationRequest:
    record = {"inputs_hash": f"hash-{seed}", "model": "", "prompts": {"style": "pencil storyboard frame"},
              "fps": 24.0, "width": 64, "height": 48}
    return GenerationRequest(shot=shot, package_dir=package, shot_dir=shot_dir,
                             spec={"seed": seed, "profile": "preview", "takes": 1}, record=record, **extra)


def updates_until(worker: GenerationWorker, shot: str = SHOT, kinds=FINAL, timeout: float = 30.0) -> list:
    """The worker's updates for ``shot`` up to and including the first of ``kinds``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for update in worker.poll():
            if update.shot == shot:
                seen.append(update)
                if update.kind in kinds:
                    return seen
        time.sleep(0.02)
    raise AssertionError(f"no {kinds} update for {shot} within {timeout} s; saw {[u.kind for u in seen]}")


def folder_names(shot_dir) -> list[str]:
    return sorted(p.name for p in shot_dir.iterdir()) if shot_dir.exists() else []


class CuttingRelay:
    """A real HTTP relay in front of the backend that passes everything through, except result
    downloads (``/files/…``, ``results.zip``): those announce their full length, send half and hang
    up — what a backend stopped mid-download or a dropped connection does to the client."""

    def __init__(self, upstream: str):
        target = urllib.parse.urlsplit(upstream)
        relay = self
        self.cuts = 0

        class Relay(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
                        self.end_headers()
                        while chunk := response.read1(65536):
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        return
                    data = response.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    cut = response.status == 200 and ("/files/" in self.path or self.path.endswith("results.zip"))
                    self.wfile.write(data[: len(data) // 2] if cut else data)
                    relay.cuts += cut
                finally:
                    connection.close()

            do_GET = do_POST = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# -- takes ------------------------------------------------------------------------------------


def test_requests_become_takes_v001_and_v002(serve, workers, make_package, tmp_path):
    server = serve()
    worker = workers(server.url)
    package = make_package(frames=3, frame_start=101)
    shot_dir = tmp_path / "out" / SHOT
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    worker.submit(request_for(package, shot_dir, seed=7))
    updates = updates_until(worker)
    kinds = [u.kind for u in updates]
    assert kinds.count("submitted") == 1 and kinds[-1] == "done", [(u.kind, u.message) for u in updates]
    submitted = updates[kinds.index("submitted")]
    uploading = updates[:kinds.index("submitted")]
    assert uploading and all(u.kind == "progress" and u.job_id is None for u in uploading)
    assert uploading[-1].step == uploading[-1].total and "uploading" in uploading[-1].message
    assert any(u.kind == "progress" and u.job_id == submitted.job_id and u.total == 3 for u in updates)
    done = updates[-1]
    assert done.take_folder == shot_dir / "v001" and done.job_id == submitted.job_id
    assert sorted(p.name for p in done.take_folder.iterdir()) == ["0101.png", "0102.png", "0103.png", "take.json"]

    record = read_take(done.take_folder)
    assert record == done.take
    identity = (record.name, record.shot, record.seed, record.profile, record.engine)
    assert identity == ("v001", SHOT, 7, "preview", "sketch")
    assert record.job_id == submitted.job_id and record.backend == server.url
    assert record.frames == [101, 102, 103] and record.clip == ""
    assert record.inputs_hash == "hash-7" and record.prompts == {"style": "pencil storyboard frame"}
    assert (record.fps, record.width, record.height) == (24.0, 64, 48)
    created = datetime.datetime.fromisoformat(record.created)
    assert created.utcoffset() == datetime.timedelta(0) and created >= before
    assert json.loads((done.take_folder / "take.json").read_text())["complete"] is True
    results = server.app.state.store.result_dir(submitted.job_id)
    assert (done.take_folder / "0102.png").read_bytes() == (results / "take01/0102.png").read_bytes()

    v001_bytes = (shot_dir / "v001" / "0101.png").read_bytes()
    worker.submit(request_for(package, shot_dir, seed=8))  # the next variation: the next seed
    second = updates_until(worker)[-1]
    assert second.kind == "done" and second.take_folder == shot_dir / "v002" and second.take.seed == 8
    assert folder_names(shot_dir) == ["v001", "v002"]  # no staging folder left behind
    assert (shot_dir / "v001" / "0101.png").read_bytes() == v001_bytes
    assert (shot_dir / "v002" / "0101.png").read_bytes() != v001_bytes  # another seed, another pencil
    deadline = time.monotonic() + 5  # (the worker reports the take a moment before it is idle)
    while worker.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.busy


def test_one_take_per_request(make_package, tmp_path):
    with pytest.raises(ValueError, match="one take per request"):
        GenerationRequest(SHOT, make_package(), tmp_path, spec={"takes": 3, "seed": 1})
    assert GenerationRequest(SHOT, make_package(), tmp_path, spec={"seed": 1}).spec["takes"] == 1


# -- failures ---------------------------------------------------------------------------------


def test_a_refused_token_fails_with_what_to_do(serve, workers, make_package, tmp_path):
    server = serve(token=TOKEN)
    shot_dir = tmp_path / "out" / SHOT
    worker = workers(server.url, token="not-the-token")
    worker.submit(request_for(make_package(), shot_dir))
    failed = updates_until(worker)[-1]
    assert failed.kind == "failed" and failed.job_id is None
    assert "refused the token" in failed.message and "Project ▸ Backend token" in failed.message
    assert folder_names(shot_dir) == []
    assert server.app.state.store.counts()["queued"] == 0


def test_no_backend_fails_with_what_to_do(workers, make_package, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    worker = workers(url)
    worker.submit(request_for(make_package(), tmp_path / SHOT))
    failed = updates_until(worker)[-1]
    assert failed.kind == "failed"
    assert f"no StandIn backend answers at {url}" in failed.message and "Start local backend" in failed.message


def test_a_failed_job_leaves_earlier_takes_alone(serve, workers, make_package, tmp_path):
    server = serve(PacedSketchEngine())
    package = make_package(frames=3)
    shot_dir = tmp_path / "out" / SHOT
    worker = workers(server.url)
    worker.submit(request_for(package, shot_dir, seed=1))
    assert updates_until(worker)[-1].kind == "done"
    take_json = (shot_dir / "v001" / "take.json").read_text()

    broken = request_for(package, shot_dir, seed=2)
    broken.spec["options"] = {"fail_at": 1}
    worker.submit(broken)
    failed = updates_until(worker)[-1]
    assert failed.kind == "failed" and failed.job_id
    assert failed.message.startswith(f"the backend could not generate {SHOT}: ")
    assert "CUDA out of memory" in failed.message
    assert folder_names(shot_dir) == ["v001"]
    assert (shot_dir / "v001" / "take.json").read_text() == take_json


def test_a_broken_download_never_becomes_a_take(serve, workers, make_package, tmp_path):
    server = serve()
    package = make_package(frames=3)
    shot_dir = tmp_path / "out" / SHOT
    direct = workers(server.url)
    direct.submit(request_for(package, shot_dir, seed=1))
    assert updates_until(direct)[-1].kind == "done"

    relay = CuttingRelay(server.url)
    try:
        through_relay = workers(relay.url)
        through_relay.submit(request_for(package, shot_dir, seed=2))
        updates = updates_until(through_relay)
    finally:
        relay.stop()
    failed = updates[-1]
    assert failed.kind == "failed", [(u.kind, u.message) for u in updates]
    assert "broke off" in failed.message and "try again" in failed.message
    assert relay.cuts >= 1
    assert any(u.kind == "submitted" for u in updates)  # the job itself went through the relay
    assert folder_names(shot_dir) == ["v001"]  # staging removed, no v002
    assert [folder.name for folder, record in complete_takes(shot_dir)] == ["v001"]


# -- cancelling -------------------------------------------------------------------------------


def test_cancel_mid_job_and_while_queued(serve, workers, make_package, tmp_path):
    server = serve(PacedSketchEngine(delay=0.05))
    worker = workers(server.url)
    long_package, short_package = make_package(frames=60), make_package(frames=2)
    out = tmp_path / "out"
    worker.submit(request_for(long_package, out / SHOT))
    worker.submit(request_for(short_package, out / "SQ010_SH0020", shot="SQ010_SH0020"))
    worker.submit(request_for(short_package, out / "SQ010_SH0030", shot="SQ010_SH0030"))

    assert worker.cancel("SQ010_SH0030")  # still queued here: dropped at once, never sent
    dropped = updates_until(worker, "SQ010_SH0030", timeout=1)[-1]
    assert dropped.kind == "cancelled" and dropped.job_id is None

    generating = updates_until(worker, kinds=("progress",))
    while not (generating[-1].job_id and generating[-1].step >= 1):  # not the upload's progress: the job's
        generating += updates_until(worker, kinds=("progress",))
    job_id = generating[-1].job_id
    assert worker.cancel(SHOT)
    cancelled = updates_until(worker, timeout=10)[-1]
    assert cancelled.kind == "cancelled" and cancelled.job_id == job_id, cancelled
    job = BackendClient(server.url).job(job_id)
    assert job["state"] == "cancelled" and job["step"] < 60

    after = updates_until(worker, "SQ010_SH0020")[-1]  # the queue goes on
    assert after.kind == "done" and after.take_folder == out / "SQ010_SH0020" / "v001"
    assert folder_names(out) == ["SQ010_SH0020"]  # nothing of the cancelled job, nor of the dropped one
    assert server.app.state.store.counts() == {"queued": 0, "running": 0, "done": 1, "failed": 0, "cancelled": 1}
    assert worker.cancel(SHOT) is False  # nothing left to cancel


# -- resuming ---------------------------------------------------------------------------------


def test_resume_a_job_after_the_client_restarted(serve, workers, make_package, tmp_path):
    server = serve(paused=True)  # the job waits in the backend's queue: its event stream is quiet
    package = make_package(frames=20)
    shot_dir = tmp_path / "out" / SHOT
    first = workers(server.url)
    first.submit(request_for(package, shot_dir))
    job_id = updates_until(first, kinds=("submitted",))[-1].job_id
    time.sleep(0.2)  # the worker is now waiting on the stream
    started = time.monotonic()
    assert first.close(timeout=5)  # Blender closes: the worker stops at once, the job stays on the backend
    assert time.monotonic() - started < 2
    assert [u.kind for u in first.poll() if u.kind in FINAL] == []
    assert BackendClient(server.url).job(job_id)["state"] == "queued"

    server.app.state.runner.resume()
    second = workers(server.url)
    second.submit(request_for(package, shot_dir, resume_job_id=job_id))
    updates = updates_until(second)
    assert updates[0].kind == "submitted" and "again" in updates[0].message
    done = updates[-1]
    assert done.kind == "done" and done.job_id == job_id and done.take.job_id == job_id
    assert read_take(shot_dir / "v001").frames == list(range(1, 21))
    assert server.app.state.store.counts()["done"] == 1  # the same job, not a new one


def test_resuming_an_unknown_job_is_lost(serve, workers, make_package, tmp_path):
    server = serve()
    worker = workers(server.url)
    worker.submit(request_for(make_package(), tmp_path / SHOT, resume_job_id="0" * 32))
    lost = updates_until(worker)[-1]
    assert lost.kind == "lost" and lost.job_id == "0" * 32
    assert "no longer knows job" in lost.message and "generate the shot again" in lost.message
    assert folder_names(tmp_path / SHOT) == []
