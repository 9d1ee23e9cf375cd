# SPDX-License-Identifier: GPL-3.0-or-later
"""``GET /v1/jobs/{id}/results.zip`` against a real uvicorn server on 127.0.0.1: the archive holds
exactly the job's result files, byte for byte, stored (not compressed) and without data descriptors;
it is there only for a done job (409 with the state before that, or for a failed or cancelled job;
404 for an unknown job or results that are gone); it names nothing but the job's results; it
survives a restart; and ``results_archive`` streams a member at a time.
"""

import io
import os
import shutil
import zipfile

from standin.ai_backend.server import ARCHIVE_CHUNK, create_app, results_archive

from backend.test_jobs import InvertEngine  # noqa: E402 (tests/ is on pythonpath)
from backend.test_server import (assert_error, client, data_dir, direct_run, package_files,  # noqa: F401
                                 submit, wait_state, zip_package)

#: general purpose bit 3: sizes and CRC follow the data instead of being in the header
DATA_DESCRIPTOR = 0x08


def read_archive(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None  # every CRC checks out
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & DATA_DESCRIPTOR, info
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_archive_holds_every_result_file(serve, data_dir, make_package, tmp_path):
    package = make_package(frames=3)
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        job = wait_state(http, submit(http, zip_package(package), spec={"seed": 4, "takes": 2}).json()["id"])
        assert job["state"] == "done" and job["links"]["results"] == f"/v1/jobs/{job['id']}/results.zip"
        response = http.get(job["links"]["results"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/zip"
        assert response.headers["content-disposition"] == f'attachment; filename="{job["id"]}-results.zip"'
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert archive.namelist() == [result["path"] for result in job["results"]]  # the job's order
        files = read_archive(response.content)
        assert len(files) == 6
        expected = direct_run(package, tmp_path / "direct", seed=4, takes=2)
        assert files == expected
        for result in job["results"]:
            assert http.get(result["url"]).content == files[result["path"]]
        assert http.get(job["links"]["results"]).content == response.content  # the same bytes every time
    server.stop()

    again = serve(create_app(InvertEngine(), data_dir))  # the results outlive the server
    with client(again) as http:
        assert http.get(job["links"]["results"]).content == response.content


def test_only_a_done_job_has_an_archive(serve, data_dir, make_package):
    server = serve(create_app(InvertEngine(delay=0.1), data_dir, paused=True))
    runner, store = server.app.state.runner, server.app.state.store
    with client(server) as http:
        slow = submit(http, zip_package(make_package(frames=20))).json()["id"]
        body = assert_error(http.get(f"/v1/jobs/{slow}/results.zip"), 409, "is still queued", "follow its events")
        assert body["detail"] == {"state": "queued"}
        runner.resume()
        wait_state(http, slow, states=("running",))
        body = assert_error(http.get(f"/v1/jobs/{slow}/results.zip"), 409, "is still running")
        assert body["detail"] == {"state": "running"}
        assert http.delete(f"/v1/jobs/{slow}").status_code == 200
        assert wait_state(http, slow)["state"] == "cancelled"
        assert_error(http.get(f"/v1/jobs/{slow}/results.zip"), 409, "was cancelled")

        crash = submit(http, zip_package(make_package()), spec={"options": {"mode": "crash"}}).json()["id"]
        assert wait_state(http, crash)["state"] == "failed"
        body = assert_error(http.get(f"/v1/jobs/{crash}/results.zip"), 409, "failed: only a done job")
        assert body["detail"] == {"state": "failed"}

        for job_id in ("0" * 32, "nope", "%2E%2E", "%2F"):
            assert_error(http.get(f"/v1/jobs/{job_id}/results.zip"), 404)

        done = submit(http, zip_package(make_package(frames=1))).json()["id"]
        assert wait_state(http, done)["state"] == "done"
        assert http.get(f"/v1/jobs/{done}/results.zip").status_code == 200
        shutil.rmtree(store.result_dir(done))  # e.g. removed by hand
        assert_error(http.get(f"/v1/jobs/{done}/results.zip"), 404, "no longer on the server")


def test_the_archive_names_only_the_job_results(serve, data_dir, make_package, tmp_path):
    package = make_package(frames=2)
    server = serve(create_app(InvertEngine(), data_dir))
    secret = tmp_path / "secret.txt"
    secret.write_text("not for download")
    with client(server) as http:
        job = wait_state(http, submit(http, files=package_files(package)).json()["id"])
        result_dir = server.app.state.store.result_dir(job["id"])
        (result_dir / "planted.txt").write_text("not a result")
        os.symlink(secret, result_dir / "take01" / "link.png")
        os.symlink(data_dir / "jobs.sqlite3", result_dir / "db.png")
        files = read_archive(http.get(job["links"]["results"]).content)
        assert sorted(files) == ["take01/0001.png", "take01/0002.png"]
        assert all(not name.startswith("/") and ".." not in name.split("/") for name in files)
        assert b"not for download" not in b"".join(files.values())
        for path in ("results.zip%2F..", "results.zip/..%2F..%2Fjobs.sqlite3", "..%2Fresults.zip"):
            assert_error(http.get(f"/v1/jobs/{job['id']}/{path}"), 404)


def test_the_schema_documents_the_archive(serve, data_dir):
    server = serve(create_app(InvertEngine(), data_dir))
    with client(server) as http:
        route = http.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/results.zip"]["get"]
    assert list(route["responses"]["200"]["content"]) == ["application/zip"]
    for status in ("404", "409"):
        assert route["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"}
    assert "not done" in route["responses"]["409"]["description"]


def test_results_archive_streams_one_member_at_a_time(tmp_path):
    big, small, empty = tmp_path / "big.bin", tmp_path / "small.png", tmp_path / "empty"
    big.write_bytes(os.urandom(3 * ARCHIVE_CHUNK + 123))  # read in several chunks
    small.write_bytes(b"\x89PNG small")
    empty.write_bytes(b"")
    members = [("take01/clip.mp4", big), ("take01/0001.png", small), ("notes/empty", empty)]
    pieces = list(results_archive(members))
    assert len(pieces) == len(members) + 1  # one piece per member, then the central directory
    assert big.stat().st_size < len(pieces[0]) < big.stat().st_size + 200  # a member and its header
    files = read_archive(b"".join(pieces))
    assert files == {name: path.read_bytes() for name, path in members}
    assert list(files) == [name for name, _ in members]
    assert b"".join(results_archive(members)) == b"".join(pieces)  # fixed timestamps: same bytes
    assert read_archive(b"".join(results_archive([]))) == {}
