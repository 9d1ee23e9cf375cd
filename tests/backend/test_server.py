# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP API against a real uvicorn server on 127.0.0.1 (a free port; every server is stopped at
teardown): submitting packages as a zip or as files, following a job by polling and by server-sent
events, downloading results, cancelling, restarting with queued jobs, the token, refusing bad input
with 4xx sentences, and a bounded schemathesis run that must never see a 5xx.
"""

import importlib.util
import io
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile

import cv2
import httpx
import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                response_schema_conformance, status_code_conformance)

from standin.ai_backend.local_server import LiveServer
from standin.ai_backend.engine import JobSpec
from standin.ai_backend.jobs import JobStore
from standin.ai_backend.package import Limits, ShotPackage
from standin.ai_backend.server import create_app

from backend.test_jobs import InvertEngine  # noqa: E402 (tests/ is on pythonpath)

TOKEN = "s3cret-token"
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def client(server: LiveServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False)


def zip_package(folder: pathlib.Path, extra: dict | None = None) -> bytes:
    """The package folder as a zip, with the folder itself at the top (as a user would zip it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def package_files(folder: pathlib.Path) -> list:
    return [("files", (path.relative_to(folder).as_posix(), path.read_bytes(), "application/octet-stream"))
            for path in sorted(folder.rglob("*")) if path.is_file()]


def submit(http: httpx.Client, zip_bytes: bytes | None = None, files: list | None = None, spec: dict | None = None):
    parts = list(files or [])
    if zip_bytes is not None:
        parts.append(("package", ("package.zip", zip_bytes, "application/zip")))
    data = {"spec": json.dumps(spec)} if spec is not None else {}
    return http.post("/v1/jobs", files=parts, data=data)


def wait_state(http: httpx.Client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {states}: {job}")


def direct_run(package_dir: pathlib.Path, out: pathlib.Path, **spec) -> dict:
    """Run the engine without the server; {relative path: bytes}."""
    out.mkdir(parents=True)
    results = InvertEngine().run(ShotPackage.load(package_dir), JobSpec(**spec), out, lambda progress: None)
    return {r.path: (out / r.path).read_bytes() for r in results}


def assert_error(response: httpx.Response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    for needle in needles:
        assert needle in body["error"], body["error"]
    return body


# -- the happy paths --------------------------------------------------------------------------


def test_health(serve, data_dir):
    server = serve(create_app(InvertEngine(), data_dir, keep_hours=24, max_finished=10))
    with client(server) as http:
        health = http.get("/v1/health").json()
        assert health["status"] == "ok" and health["api"] == "v1" and health["version"]
        assert (health["engine"], health["kind"]) == ("invert", "image")
        assert health["describe"]["device"] == "cpu" and "numpy" in health["describe"]["versions"]
        assert health["queue"] == {"queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
        assert health["cleanup"]["keep_hours"] == 24 and health["cleanup"]["max_finished"] == 10
        assert "24 hours" in health["cleanup"]["policy"]
        assert health["limits"]["max_upload_bytes"] == Limits().max_upload_bytes
        assert health["auth"] is False
        assert http.get("/v1/models").json() == {"bases": [], "controlnets": [], "loras": [], "ip_adapters": []}
        schema = http.get("/openapi.json").json()
        assert {"/v1/health", "/v1/models", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events",
                "/v1/jobs/{job_id}/files/{path}", "/v1/jobs/{job_id}/results.zip"} <= set(schema["paths"])


def test_models_come_from_the_registry(serve, data_dir):
    class Registry:
        def listing(self):
            return {"bases": [{"name": "sd15", "family": "sd15", "format": "diffusers"}],
                    "controlnets": [{"name": "depth", "control": "depth", "family": "sd15"}],
                    "loras": [{"name": "mara.safetensors"}], "ip_adapters": []}

    server = serve(create_app(InvertEngine(), data_dir, models=Registry()))
    with client(server) as http:
        models = http.get("/v1/models").json()
        assert models["bases"][0]["name"] == "sd15" and models["loras"] == [{"name": "mara.safetensors"}]


def test_submit_a_zip_and_download_results(serve, data_dir, make_package, tmp_path):
    package = make_package(frames=3)
    engine = InvertEngine()
    server = serve(create_app(engine, data_dir))
    with client(server) as http:
        response = submit(http, zip_package(package), spec={"seed": 9, "takes": 2, "frames": [1, 3]})
        assert response.status_code == 202, response.text
        body = response.json()
        job_id = body["id"]
        assert body["state"] == "queued" and body["links"]["job"] == f"/v1/jobs/{job_id}"
        assert body["links"]["results"] == f"/v1/jobs/{job_id}/results.zip"
        assert response.headers["location"] == f"/v1/jobs/{job_id}"

        job = wait_state(http, job_id)
        assert job["state"] == "done" and job["error"] is None and job["step"] == job["total"] == 4
        assert job["spec"] == {"profile": "preview", "seed": 9, "takes": 2, "frames": [1, 3], "options": {}}
        assert job["started"] and job["finished"] and job["attempts"] == 1
        expected = direct_run(package, tmp_path / "direct", seed=9, takes=2, frames=(1, 3))
        assert sorted(r["path"] for r in job["results"]) == sorted(expected)
        for result in job["results"]:
            assert result["kind"] == "frame" and result["url"] == f"/v1/jobs/{job_id}/files/{result['path']}"
            download = http.get(result["url"])
            assert download.status_code == 200 and download.headers["content-type"] == "image/png"
            assert download.content == expected[result["path"]]
        assert http.get("/v1/health").json()["queue"]["done"] == 1
        assert engine.checks == 1  # checked when submitted; the runner did not load and check it again
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 409
        assert_error(http.get(f"/v1/jobs/{job_id}/files/take01/0002.png"), 404, "no result file")
    store = server.app.state.store
    assert sorted(p.name for p in store.job_dir(job_id).iterdir()) == ["result"]  # upload removed


def test_submit_files_one_by_one(serve, data_dir, make_package, tmp_path):
    package = make_package(frames=2)
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        response = submit(http, files=package_files(package))  # no spec: every default
        assert response.status_code == 202, response.text
        job = wait_state(http, response.json()["id"])
        assert job["state"] == "done" and len(job["results"]) == 2
        expected = direct_run(package, tmp_path / "direct")
        assert http.get(job["results"][1]["url"]).content == expected["take01/0002.png"]


def test_loose_files_go_on_top_of_the_zip(serve, data_dir, make_package):
    package = make_package(frames=2)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:  # the zip lacks the depth pass...
        for path in sorted(package.rglob("*")):
            if path.is_file() and path.parent.name != "depth":
                archive.write(path, path.relative_to(package).as_posix())
    depth = [part for part in package_files(package) if part[1][0].startswith("depth/")]
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        assert_error(submit(http, zipped.getvalue()), 400, "depth pass is missing")
        response = submit(http, zipped.getvalue(), files=depth)  # ...which comes as files
        assert response.status_code == 202, response.text
        assert wait_state(http, response.json()["id"])["state"] == "done"


def test_events_stream_progress_and_the_end(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(delay=0.05), data_dir, heartbeat=0.2))
    with client(server) as http:
        job_id = submit(http, zip_package(make_package(frames=6))).json()["id"]
        events = []
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[len("data: "):])))
        names = [name for name, _ in events]
        assert names[-1] == "done" and set(names[:-1]) == {"progress"}
        assert names.count("progress") >= 3
        steps = [data["step"] for name, data in events if name == "progress" and data["state"] == "running"]
        assert steps == sorted(steps) and max(steps) >= 5
        assert any(data.get("eta_seconds") is not None for _, data in events)
        final = events[-1][1]
        assert final["state"] == "done" and len(final["results"]) == 6
        # a finished job's stream is just its final event
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            text = "".join(stream.iter_text())
        assert text.startswith("event: done\n") and text.count("event:") == 1


def test_events_keep_a_quiet_stream_alive(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(delay=0.5), data_dir, heartbeat=0.1))
    with client(server) as http:
        job_id = submit(http, zip_package(make_package(frames=2))).json()["id"]
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            text = "".join(stream.iter_text())
    assert ": keep-alive\n\n" in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: done\n")


def test_cancel_a_running_job(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(delay=0.1), data_dir))
    with client(server) as http:
        job_id = submit(http, zip_package(make_package(frames=30))).json()["id"]
        deadline = time.monotonic() + 20
        while http.get(f"/v1/jobs/{job_id}").json()["step"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = http.delete(f"/v1/jobs/{job_id}")
        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
        job = wait_state(http, job_id)
        assert job["state"] == "cancelled" and job["results"] == [] and job["step"] < 30
        assert_error(http.delete(f"/v1/jobs/{job_id}"), 409, "already finished")
        assert http.get(f"/v1/jobs/{job_id}/files/take01/0001.png").status_code == 404
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            assert "".join(stream.iter_text()).startswith("event: cancelled\n")
    server.stop()
    assert not server.app.state.store.result_dir(job_id).exists()


def test_cancel_a_queued_job(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir, paused=True))
    with client(server) as http:
        job_id = submit(http, zip_package(make_package())).json()["id"]
        response = http.delete(f"/v1/jobs/{job_id}")
        assert response.status_code == 200 and response.json()["state"] == "cancelled"
        server.app.state.runner.resume()
        time.sleep(0.3)
        assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_queued_jobs_survive_a_restart(serve, data_dir, make_package, tmp_path):
    package = make_package()
    first = serve(create_app(InvertEngine(), data_dir, paused=True))  # takes no job
    store = first.app.state.store
    with client(first) as http:
        ids = [submit(http, zip_package(package), spec={"seed": seed}).json()["id"] for seed in (1, 2)]
        ids.append(submit(http, files=package_files(package), spec={"seed": 3}).json()["id"])
        assert http.get("/v1/health").json()["queue"]["queued"] == 3
    # a zip upload is kept as it came and is the job's package (nothing unpacked); files make a folder
    for job_id in ids[:2]:
        assert store.get(job_id).package == str(store.job_dir(job_id) / "upload.zip")
        assert sorted(p.name for p in store.job_dir(job_id).iterdir()) == ["upload.zip"]
    assert store.get(ids[2]).package == str(store.job_dir(ids[2]) / "package")
    first.stop()

    engine = InvertEngine()
    second = serve(create_app(engine, data_dir))  # a new server on the same data folder
    with client(second) as http:
        jobs = [wait_state(http, job_id) for job_id in ids]
        assert [job["state"] for job in jobs] == ["done", "done", "done"]
        assert engine.checks == 3  # what an earlier server checked is loaded and checked again
        assert [job["spec"]["seed"] for job in jobs] == [1, 2, 3]
        assert jobs[0]["finished"] <= jobs[1]["finished"] <= jobs[2]["finished"]
        for job in jobs:
            expected = direct_run(package, tmp_path / job["id"], seed=job["spec"]["seed"])
            assert {r["path"]: http.get(r["url"]).content for r in job["results"]} == expected
    for job_id in ids:  # the upload, zip or folder, went with the job
        assert sorted(p.name for p in second.app.state.store.job_dir(job_id).iterdir()) == ["result"]


def test_stopping_the_server_requeues_the_running_job(serve, data_dir, make_package):
    first = serve(create_app(InvertEngine(delay=0.1), data_dir))
    with client(first) as http:
        job_id = submit(http, zip_package(make_package(frames=30))).json()["id"]
        wait_state(http, job_id, states=("running",))
    first.stop()
    second = serve(create_app(InvertEngine(), data_dir))
    with client(second) as http:
        job = wait_state(http, job_id)
        assert job["state"] == "done" and len(job["results"]) == 30 and job["attempts"] == 1


def test_one_server_per_data_folder(serve, data_dir):
    serve(create_app(InvertEngine(), data_dir))
    with pytest.raises(RuntimeError, match="did not start"):
        serve(create_app(InvertEngine(), data_dir))


def test_engine_failures_become_failed_jobs(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        crash = submit(http, zip_package(make_package()), spec={"options": {"mode": "crash"}}).json()["id"]
        refuse = submit(http, zip_package(make_package()), spec={"options": {"mode": "refuse"}}).json()["id"]
        job = wait_state(http, crash)
        assert job["state"] == "failed" and job["error"] == "engine error: RuntimeError: boom"
        assert job["results"] == []
        job = wait_state(http, refuse)
        assert job["state"] == "failed" and job["error"] == "this engine refuses frames like these."
        with http.stream("GET", f"/v1/jobs/{refuse}/events") as stream:
            name, data = "".join(stream.iter_text()).split("\n")[:2]
        assert name == "event: failed" and json.loads(data[len("data: "):])["error"] == job["error"]
        assert http.get("/v1/health").json()["queue"]["failed"] == 2


# -- auth -------------------------------------------------------------------------------------


def test_token_is_required(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir, token=TOKEN))
    with client(server) as anonymous, client(server, "wrong") as wrong, client(server, TOKEN) as http:
        for path in ("/v1/health", "/v1/models", "/v1/jobs/" + "0" * 32):
            response = anonymous.get(path)
            assert_error(response, 401, "Bearer")
            assert response.headers["www-authenticate"] == "Bearer"
            assert_error(wrong.get(path), 401)
        assert_error(anonymous.post("/v1/jobs", files=package_files(make_package())), 401)
        assert_error(anonymous.get("/v1/health", headers={"Authorization": "Basic " + TOKEN}), 401)
        assert_error(anonymous.get("/v1/health", headers={"Authorization": "Bearer sécret".encode()}), 401)
        assert http.get("/v1/health").status_code == 200
        assert http.get("/v1/health").json()["auth"] is True
        assert anonymous.get("/openapi.json").status_code == 200  # the schema is public
        response = submit(http, files=package_files(make_package()))
        assert response.status_code == 202
        assert wait_state(http, response.json()["id"])["state"] == "done"


# -- bad input is a 4xx with a sentence -------------------------------------------------------


def test_path_traversal_is_refused(serve, data_dir, make_package):
    package = make_package()
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        assert_error(submit(http, zip_package(package, extra={"../x": b"evil"})), 400, "outside the package")
        for name in ("../x", "depth/../../x", "/etc/x", "depth\\0001.png", "depth//0001.png", "./shot.json"):
            files = package_files(package) + [("files", (name, b"evil", "application/octet-stream"))]
            assert_error(submit(http, files=files), 400, "not a relative path")
        assert not (data_dir / "x").exists() and not (data_dir / "jobs" / "x").exists()
        job_id = submit(http, files=package_files(package)).json()["id"]
        wait_state(http, job_id)
        for path in ("..%2F..%2Fjobs.sqlite3", "take01%2F..%2F..%2F..%2Fjobs.sqlite3", "%2Fetc%2Fpasswd",
                     "take01/..%2F0001.png", "take01%5C0001.png"):
            assert_error(http.get(f"/v1/jobs/{job_id}/files/{path}"), 404)
        assert http.get(f"/v1/jobs/{job_id}/files/take01/0001.png").status_code == 200
    assert list((data_dir / "jobs").iterdir()) == [data_dir / "jobs" / job_id]  # refused uploads left nothing


def test_hostile_zips_are_400_and_leave_nothing(serve, data_dir, make_package):
    """The upload zip is the job's package, read in place: it is checked as a zip before it is queued."""
    package = make_package()
    png = (package / "depth" / "0001.png").read_bytes()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("shot.json", (package / "shot.json").read_text())
        archive.writestr("depth/0001.png", bytes(8 * 2**20))  # 8 MiB of zeros in ~8 KiB
    linked = io.BytesIO()
    with zipfile.ZipFile(linked, "w") as archive, zipfile.ZipFile(io.BytesIO(zip_package(package))) as source:
        for entry in source.infolist():
            archive.writestr(entry, source.read(entry))
        link = zipfile.ZipInfo(f"{package.name}/reference/Mara.png")
        link.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        archive.writestr(link, "/etc/passwd")
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        assert_error(submit(http, bomb.getvalue()), 400, "a zip bomb, refused")
        assert_error(submit(http, linked.getvalue()), 400, "is a symbolic link")
        assert_error(submit(http, zip_package(package, extra={"/etc/x": b"evil"})), 400, "outside the package")
        assert_error(submit(http, zip_package(package, extra={f"./{package.name}/depth/0001.png": png})), 400,
                     "is in the zip twice")
        assert_error(submit(http, zip_package(package)[:-40]), 400, "not a zip")
    assert list((data_dir / "jobs").iterdir()) == []


def test_bad_packages_are_400_with_a_sentence(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        broken = make_package()
        (broken / "depth" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        assert_error(submit(http, files=package_files(broken)), 400, "depth/0001.png is not a readable PNG")

        mismatched = make_package()
        cv2.imwrite(str(mismatched / "canny" / "0001.png"), np.zeros((32, 32), np.uint8))
        assert_error(submit(http, zip_package(mismatched)), 400, "one size")

        missing = make_package()
        for path in (missing / "openpose").iterdir():
            path.unlink()
        assert_error(submit(http, zip_package(missing)), 400, "openpose pass is missing")

        no_json = make_package()
        (no_json / "shot.json").unlink()
        assert_error(submit(http, zip_package(no_json)), 400, "shot.json")

        odd = make_package()
        meta = json.loads((odd / "shot.json").read_text())
        meta["characters"] = ["not a dict"]
        (odd / "shot.json").write_text(json.dumps(meta))
        assert_error(submit(http, zip_package(odd)), 400, "must be a list of objects")

        assert_error(submit(http, b"not a zip"), 400, "not a zip")
        good = zip_package(make_package())
        assert_error(submit(http, good, spec={"frames": [40]}), 400, "not in the package")
        assert_error(submit(http, good, spec={"profile": "poster"}), 400, "profile must be one of")
        assert_error(submit(http, good, spec={"seed": -1}), 400, "seed")
        assert_error(submit(http, good, spec={"options": {"mode": "explode"}}), 400, "unknown mode")
    assert list((data_dir / "jobs").iterdir()) == []


def test_malformed_requests_are_4xx(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir))
    good = zip_package(make_package())
    with client(server) as http:
        assert_error(http.post("/v1/jobs", files={"spec": (None, "{}")}), 422, "send the shot package")
        assert_error(http.post("/v1/jobs", data={"spec": "{}"}), 415, "multipart/form-data")
        assert_error(http.post("/v1/jobs", files=[("package", ("p.zip", good, "application/zip"))],
                               data={"spec": "{nope"}), 422, "spec is not valid JSON")
        assert_error(submit(http, good, spec=[1, 2]), 422, "JSON object")
        body = assert_error(submit(http, good, spec={"seed": "7"}), 422, "seed")
        assert body["detail"][0]["loc"] == ["seed"]
        assert_error(submit(http, good, spec={"sed": 7}), 422, "sed")
        assert_error(http.post("/v1/jobs", files=[("other", ("x", b"1", "text/plain"))]), 422, "unknown form field")
        assert_error(http.post("/v1/jobs", files=[("files", ("a.png", b"1", "image/png")),
                                                  ("files", ("a.png", b"2", "image/png"))]), 400, "twice")
        assert_error(http.post("/v1/jobs", json={"package": "x"}), 415, "multipart/form-data")
        assert_error(http.post("/v1/jobs", content=b"--xyz\r\ngarbage",
                               headers={"content-type": "multipart/form-data; boundary=xyz"}), 422)
        whole = http.build_request("POST", "/v1/jobs", files=[("package", ("p.zip", good, "application/zip"))])
        truncated = whole.read()[:-200]
        assert_error(http.post("/v1/jobs", content=truncated, headers={"content-type": whole.headers["content-type"]}),
                     422, "ended early")
        assert_error(http.put("/v1/jobs"), 405)
        assert_error(http.get("/v1/nowhere"), 404)
    assert list((data_dir / "jobs").iterdir()) == []


def test_unknown_jobs_are_404(serve, data_dir):
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        assert_error(http.get("/v1/jobs/" + "0" * 32), 404, "there is no job")
        for job_id in ("0" * 32, "nope", "..", "%2E%2E", "%2F"):
            assert_error(http.get(f"/v1/jobs/{job_id}"), 404)
            assert_error(http.get(f"/v1/jobs/{job_id}/events"), 404)
            assert_error(http.get(f"/v1/jobs/{job_id}/files/take01/0001.png"), 404)
            assert_error(http.delete(f"/v1/jobs/{job_id}"), 404)


def test_oversized_uploads_are_413(serve, data_dir, make_package):
    limits = Limits(max_upload_bytes=60_000)
    server = serve(create_app(InvertEngine(), data_dir, limits=limits))
    package = make_package()
    big = [("files", ("extra/noise.bin", os.urandom(100_000), "application/octet-stream"))]
    with client(server) as http:
        assert len(zip_package(package)) < 60_000
        assert submit(http, zip_package(package)).status_code == 202
        assert_error(submit(http, files=package_files(package) + big), 413, "larger than this server accepts")

        # no Content-Length (chunked): the limit holds while streaming
        request = http.build_request("POST", "/v1/jobs", files=package_files(package) + big)
        body = request.read()

        def chunks():
            for start in range(0, len(body), 8192):
                yield body[start:start + 8192]

        response = http.post("/v1/jobs", content=chunks(),
                             headers={"content-type": request.headers["content-type"]})
        assert_error(response, 413)
    assert len(list((data_dir / "jobs").iterdir())) == 1  # only the accepted job


# -- schema-driven fuzzing --------------------------------------------------------------------

#: the id and a result of a finished job in the fuzzed server (set by ``api_schema``)
KNOWN: dict = {}
#: besides "no 5xx": every answer has a documented status, content type, schema and headers
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def api_schema(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(), data_dir, token=TOKEN, cancel_wait=0.2))
    with client(server, TOKEN) as http:  # one finished job, so that real ids are fuzzed too
        job = wait_state(http, submit(http, files=package_files(make_package())).json()["id"])
    KNOWN.update(job=job["id"], path=job["results"][0]["path"], turn=0)
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    KNOWN["turn"] += 1
    parameters = case.path_parameters
    if parameters and "job_id" in parameters and KNOWN["turn"] % 2:  # every other case: the real job
        parameters["job_id"] = KNOWN["job"]
        if "path" in parameters and KNOWN["turn"] % 4 == 1:
            parameters["path"] = KNOWN["path"]
    with requests.Session() as session:
        session.trust_env = False
        case.call_and_validate(session=session, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS,
                               timeout=30)


# -- the command ------------------------------------------------------------------------------


def _cli(*args, env=None, timeout=60):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_BACKEND")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "standin.ai_backend.cli", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_refuses_a_public_host_without_a_token(tmp_path):
    data = tmp_path / "data"
    result = _cli("serve", "--host", "0.0.0.0", "--port", "1", "--data", str(data))
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert not data.exists()  # it stopped before touching anything, let alone binding


def test_cli_diffusers_needs_a_registry(tmp_path):
    result = _cli("serve", "--engine", "diffusers", "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and "--models" in result.stderr


class CliServer:
    """``standin-backend serve --port 0`` in a subprocess; ``url`` once uvicorn says where it listens."""

    def __init__(self, *args, code: str | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_BACKEND")}
        command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "standin.ai_backend.cli"]
        self.process = subprocess.Popen([*command, "serve", "--port", "0", *args], cwd=REPO, env=environment,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stderr], daemon=True).start()
        self.url = None
        deadline = time.monotonic() + 60
        try:
            while self.url is None:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if "Uvicorn running on " in line:
                    self.url = line.split("Uvicorn running on ")[1].split()[0]
        except BaseException:
            self.kill()
            raise

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def test_cli_serves_and_stops_gracefully(tmp_path, make_package):
    """SIGTERM stops the server; the job it was running is queued again, its attempt not counted."""
    data = tmp_path / "data"
    code = ("import sys; sys.path.insert(0, 'tests'); from backend.test_jobs import InvertEngine; "
            "import standin.ai_backend.cli as cli; "
            "cli.load_engine = lambda name, models, data=None: (InvertEngine(delay=0.2), None); sys.exit(cli.main())")
    server = CliServer("--data", str(data), "--token", TOKEN, code=code)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                          trust_env=False) as http:
            assert http.get("/v1/health").json()["engine"] == "invert"
            job_id = submit(http, zip_package(make_package(frames=30))).json()["id"]
            wait_state(http, job_id, states=("running",))
        # uvicorn shuts down gracefully, then re-raises the signal so that the parent sees it
        assert server.terminate() in (0, -signal.SIGTERM)
    finally:
        server.kill()
    store = JobStore(data)
    job = store.get(job_id)
    assert job.state == "queued" and job.attempts == 0
    store.close()


def test_loopback_hosts():
    from standin.ai_backend.cli import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.168.1.4", "example.com")))


# -- the real sketch engine, once it exists ---------------------------------------------------


needs_sketch = pytest.mark.skipif(
    importlib.util.find_spec("standin.ai_backend.engines.sketch") is None, reason="the sketch engine is not written yet")


@needs_sketch
def test_a_job_through_the_sketch_engine(serve, data_dir, make_package, tmp_path):
    from standin.ai_backend.engines.sketch import SketchEngine

    package = make_package(frames=2)
    server = serve(create_app(SketchEngine(), data_dir))
    with client(server) as http:
        health = http.get("/v1/health").json()
        assert health["engine"] == "sketch" and health["kind"] == "image"
        response = submit(http, zip_package(package), spec={"seed": 3})
        assert response.status_code == 202, response.text
        job = wait_state(http, response.json()["id"], timeout=120)
        assert job["state"] == "done", job["error"]
        assert job["results"]
        out = tmp_path / "direct"
        out.mkdir()
        expected = SketchEngine().run(ShotPackage.load(package), JobSpec(seed=3), out, lambda progress: None)
        for result in expected:
            assert http.get(f"/v1/jobs/{job['id']}/files/{result.path}").content == (out / result.path).read_bytes()


@needs_sketch
def test_the_command_serves_the_sketch_engine(tmp_path, make_package):
    server = CliServer("--engine", "sketch", "--data", str(tmp_path / "data"))
    try:
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
            assert http.get("/v1/health").json()["engine"] == "sketch"
            response = submit(http, files=package_files(make_package(frames=1)))
            assert response.status_code == 202, response.text
            assert wait_state(http, response.json()["id"], timeout=120)["state"] == "done"
        assert server.terminate() in (0, -signal.SIGTERM)
    finally:
        server.kill()
