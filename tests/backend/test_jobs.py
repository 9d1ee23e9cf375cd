# SPDX-License-Identifier: GPL-3.0-or-later
"""The job store and runner without HTTP: durability across restarts, recovery of jobs a dead server
left running, the cleanup policy, atomic results, cancellation and a graceful stop.

``InvertEngine`` is a real, deterministic engine (the depth pass inverted, shifted by seed and take)
that the server tests use too.
"""

import dataclasses
import pathlib
import shutil
import threading
import time
import zipfile

import cv2
import numpy as np
import pytest

from standin.ai_backend.engine import (Cancelled, EngineInputError, JobSpec, Progress, ResultFile, frames_of,
                                       take_folder)
from standin.ai_backend.jobs import MAX_ATTEMPTS, STOPPED_TWICE, JobStore
from standin.ai_backend.package import FolderSource, ShotPackage
from standin.ai_backend.runner import PREPARED_MAX, Runner, spec_to_dict


class InvertEngine:
    """Writes ``takeNN/FFFF.png`` = 255 - depth (+ seed + take, mod 256); ``delay`` seconds a step.

    ``options["mode"]``: "crash" raises RuntimeError after the first frame, "refuse" raises
    EngineInputError after the first frame, "lie" lists a file it never wrote.
    """

    name = "invert"
    kind = "image"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.runs = 0
        self.checks = 0

    def describe(self) -> dict:
        return {"device": "cpu", "versions": {"numpy": np.__version__, "opencv": cv2.__version__}}

    def check(self, package, spec: JobSpec) -> None:
        self.checks += 1
        frames_of(package, spec)
        if spec.options.get("mode") not in (None, "crash", "refuse", "lie"):
            raise EngineInputError(f"unknown mode {spec.options.get('mode')!r}.")

    def run(self, package, spec: JobSpec, out_dir: pathlib.Path, progress) -> list[ResultFile]:
        self.runs += 1
        frames = frames_of(package, spec)
        total = len(frames) * spec.takes
        mode = spec.options.get("mode")
        results, step = [], 0
        for take in range(1, spec.takes + 1):
            for frame in frames:
                progress(Progress(step, total, frame, f"take {take}, frame {frame}"))
                if self.delay:
                    time.sleep(self.delay)
                pixels = ((255 - package.image("depth", frame).astype(np.int32) + spec.seed + take) % 256)
                path = f"{take_folder(take)}/{frame:04d}.png"
                (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(out_dir / path), cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2BGR))
                results.append(ResultFile(path, take, frame, "frame"))
                step += 1
                if mode == "crash":
                    raise RuntimeError("boom")
                if mode == "refuse":
                    raise EngineInputError("this engine refuses frames like these.")
        if mode == "lie":
            results.append(ResultFile("take01/9999.png", 1, 9999, "frame"))
        progress(Progress(total, total, None, "done"))
        return results


def expected_pixels(package_dir, frame: int, seed: int = 0, take: int = 1) -> np.ndarray:
    package = ShotPackage.load(package_dir)
    return ((255 - package.image("depth", frame).astype(np.int32) + seed + take) % 256).astype(np.uint8)


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def queue(store: JobStore, package_dir, engine: str = "invert", zipped: bool = False, **spec) -> str:
    """Queue a job the way the server does: its package copied into the job's folder, or (``zipped``)
    zipped there as ``upload.zip``, the package the job then reads in place."""
    job_id = store.new_id()
    if zipped:
        target = store.job_dir(job_id) / "upload.zip"
        target.parent.mkdir(parents=True)
        with zipfile.ZipFile(target, "w") as archive:
            for path in sorted(pathlib.Path(package_dir).rglob("*")):
                if path.is_file():
                    archive.write(path, f"SQ010_SH0010/{path.relative_to(package_dir).as_posix()}")
    else:
        target = store.job_dir(job_id) / "package"
        shutil.copytree(package_dir, target)
    store.add(job_id, engine, spec_to_dict(JobSpec(**spec)), target)
    return job_id


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def runners():
    """Runners started by a test; stopped at teardown."""
    started = []
    yield started
    for runner in started:
        assert runner.stop(10)


# -- the store --------------------------------------------------------------------------------


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_jobs_survive_a_restart(data_dir, make_package, zipped):
    store = JobStore(data_dir)
    job_id = queue(store, make_package(), zipped=zipped, seed=7, takes=2, frames=(1, 2), options={"mode": None})
    store.close()

    again = JobStore(data_dir)  # a new server on the same data folder
    job = again.get(job_id)
    assert job.state == "queued" and job.engine == "invert" and job.attempts == 0
    assert job.spec == {"profile": "preview", "seed": 7, "takes": 2, "frames": [1, 2], "options": {"mode": None}}
    assert (pathlib.Path(job.package).is_file() if zipped else pathlib.Path(job.package).is_dir())
    assert again.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert again.recover() == {"requeued": [], "failed": [], "cancelled": []}
    assert again.get(job_id).state == "queued"
    assert again.get("not-an-id") is None and again.get("0" * 32) is None


def test_jobs_are_claimed_in_submission_order(data_dir, make_package):
    store = JobStore(data_dir)
    package = make_package()
    ids = [queue(store, package) for _ in range(3)]
    claimed = [store.claim() for _ in range(3)]
    assert [job.id for job in claimed] == ids
    assert all(job.state == "running" and job.attempts == 1 and job.started for job in claimed)
    assert store.claim() is None


def test_a_job_left_running_is_requeued_then_failed_after_two_attempts(data_dir, make_package):
    store = JobStore(data_dir)
    package = make_package()
    first, second = queue(store, package), queue(store, package)
    assert store.claim().id == first
    store.progress(first, 1, 3, 1)
    (store.job_dir(first) / "staging-dead").mkdir()
    store.close()  # the server dies while running `first`

    store = JobStore(data_dir)
    assert store.recover() == {"requeued": [first], "failed": [], "cancelled": []}
    job = store.get(first)
    assert (job.state, job.attempts, job.step, job.total) == ("queued", 1, 0, 0)
    assert store.get(second).state == "queued"
    assert not (store.job_dir(first) / "staging-dead").exists()
    assert store.claim().id == first  # still first in line
    store.close()  # ... and dies again

    store = JobStore(data_dir)
    assert store.recover() == {"requeued": [], "failed": [first], "cancelled": []}
    job = store.get(first)
    assert job.state == "failed" and job.error == STOPPED_TWICE and job.attempts == MAX_ATTEMPTS
    assert job.finished is not None
    assert not (store.job_dir(first) / "package").exists()  # inputs of a finished job are dropped
    assert store.get(second).state == "queued" and (store.job_dir(second) / "package").is_dir()


def test_a_running_job_whose_cancel_was_asked_for_is_cancelled_on_restart(data_dir, make_package):
    store = JobStore(data_dir)
    job_id = queue(store, make_package())
    store.claim()
    before, job = store.request_cancel(job_id)
    assert before == "running" and job.state == "running" and job.cancel_requested
    store.close()
    store = JobStore(data_dir)
    assert store.recover()["cancelled"] == [job_id]
    assert store.get(job_id).state == "cancelled"


def test_recover_removes_folders_without_a_job(data_dir, make_package):
    store = JobStore(data_dir)
    job_id = queue(store, make_package())
    orphan = store.jobs_dir / ("a" * 32)
    (orphan / "package").mkdir(parents=True)
    other = store.jobs_dir / "keep-me"  # not a job folder name: left alone
    other.mkdir()
    store.recover()
    assert not orphan.exists() and other.is_dir() and store.job_dir(job_id).is_dir()


def test_cancel_a_queued_job_at_once(data_dir, make_package):
    store = JobStore(data_dir)
    job_id = queue(store, make_package())
    before, job = store.request_cancel(job_id)
    assert before == "queued" and job.state == "cancelled" and job.finished
    assert store.claim() is None
    assert store.request_cancel(job_id)[0] == "cancelled"  # the server answers 409
    assert store.request_cancel("f" * 32) is None


def test_cleanup_policy_by_age_and_by_count(data_dir, make_package):
    store = JobStore(data_dir, keep_hours=72, max_finished=2)
    package = make_package()
    ids = [queue(store, package) for _ in range(5)]
    for job_id in ids[:4]:  # four finish, one stays queued
        store.claim()
        store.result_dir(job_id).mkdir(parents=True)
        store.finish(job_id, "done", results=[])
        time.sleep(0.002)
    newest = store.get(ids[3]).finished

    removed = store.cleanup(now=newest + 60)  # all young: only the count limit applies
    assert sorted(removed) == sorted(ids[:2])
    assert [job.id for job in store.jobs()] == ids[2:]
    assert not store.job_dir(ids[0]).exists() and store.result_dir(ids[2]).is_dir()

    assert store.cleanup(now=newest + 72 * 3600 - 60) == []  # not yet 72 hours
    removed = store.cleanup(now=newest + 72 * 3600 + 60)
    assert sorted(removed) == sorted(ids[2:4])
    assert [job.id for job in store.jobs()] == [ids[4]]  # queued jobs are never cleaned up
    assert store.job_dir(ids[4]).is_dir()
    policy = store.policy()
    assert policy["keep_hours"] == 72 and policy["max_finished"] == 2 and "72 hours" in policy["policy"]


# -- the runner -------------------------------------------------------------------------------


def test_runner_commits_results_atomically(data_dir, make_package):
    store = JobStore(data_dir)
    package = make_package(frames=3)
    job_id = queue(store, package, seed=5, takes=2, frames=(2, 3))
    seen = []
    store.subscribe(job_id, lambda job: seen.append((job.state, job.step, job.total, job.frame, job.eta_seconds)))
    job = Runner(store, InvertEngine()).run_next()

    assert job.state == "done" and job.error is None and job.step == job.total == 4
    assert [(r["path"], r["take"], r["frame"], r["kind"]) for r in job.results] == [
        ("take01/0002.png", 1, 2, "frame"), ("take01/0003.png", 1, 3, "frame"),
        ("take02/0002.png", 2, 2, "frame"), ("take02/0003.png", 2, 3, "frame")]
    folder = store.job_dir(job_id)
    assert sorted(p.name for p in folder.iterdir()) == ["result"]  # no staging, inputs dropped
    for result in job.results:
        pixels = read_rgb(folder / "result" / result["path"])
        np.testing.assert_array_equal(pixels, expected_pixels(package, result["frame"], 5, result["take"]))
    assert ("running", 0, 0, None, None) in seen
    assert any(state == "running" and total == 4 and frame == 3 for state, _, total, frame, _ in seen)
    assert any(eta is not None for *_, eta in seen)
    assert seen[-1][0] == "done"


@pytest.mark.parametrize("mode, error", [
    ("crash", "engine error: RuntimeError: boom"),
    ("refuse", "this engine refuses frames like these."),
    ("lie", "engine error: FileNotFoundError: the engine listed 'take01/9999.png' but did not write it"),
])
def test_a_failed_run_leaves_no_result_folder(data_dir, make_package, mode, error):
    store = JobStore(data_dir)
    job_id = queue(store, make_package(), options={"mode": mode})
    job = Runner(store, InvertEngine()).run_next()
    assert job.state == "failed" and job.error == error and job.results == []
    assert not store.job_dir(job_id).exists() or list(store.job_dir(job_id).iterdir()) == []


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_a_package_that_went_missing_fails_the_job(data_dir, make_package, zipped):
    store = JobStore(data_dir)
    job_id = queue(store, make_package(), zipped=zipped)
    stored = pathlib.Path(store.get(job_id).package)
    stored.unlink() if zipped else shutil.rmtree(stored)
    job = Runner(store, InvertEngine()).run_next()
    assert job.state == "failed" and "shot.json" in job.error


def test_a_queued_zip_job_runs_after_a_restart_from_its_zip(data_dir, make_package):
    """The uploaded zip is the job's package: after a restart the runner loads it in place (no
    folder is ever unpacked), the results are those of the package folder, the zip goes with the job."""
    store = JobStore(data_dir)
    package = make_package(frames=3)
    zipped, folder = queue(store, package, zipped=True, seed=4, takes=2), queue(store, package, seed=4, takes=2)
    store.close()

    store = JobStore(data_dir)
    assert store.recover() == {"requeued": [], "failed": [], "cancelled": []}
    assert sorted(p.name for p in store.job_dir(zipped).iterdir()) == ["upload.zip"]
    engine = InvertEngine()
    runner = Runner(store, engine)
    assert [runner.run_next().state for _ in range(2)] == ["done", "done"]
    assert engine.checks == 2  # nothing was handed over: both were loaded and checked by the runner
    first, second = store.get(zipped), store.get(folder)
    assert first.results == second.results and len(first.results) == 6
    for result in first.results:
        assert ((store.result_dir(zipped) / result["path"]).read_bytes()
                == (store.result_dir(folder) / result["path"]).read_bytes())
    assert sorted(p.name for p in store.job_dir(zipped).iterdir()) == ["result"]  # the zip went with the job


def test_runner_uses_the_package_the_server_checked(data_dir, make_package):
    """A package loaded and checked for the job in this process is not loaded and checked again;
    one checked for another spec or folder, or never handed over (a restart), is."""
    store = JobStore(data_dir)
    package = make_package(frames=2)
    engine = InvertEngine()
    runner = Runner(store, engine)

    def prepare(job_id, spec_of_check: dict, folder=None):
        checked = ShotPackage.load(folder or store.get(job_id).package)
        engine.check(checked, JobSpec(**spec_of_check))
        runner.prepared(job_id, checked, spec_to_dict(JobSpec(**spec_of_check)))

    handed = queue(store, package, seed=3)
    prepare(handed, {"seed": 3})
    assert engine.checks == 1
    job = runner.run_next()
    assert job.id == handed and job.state == "done" and engine.checks == 1  # not checked again
    np.testing.assert_array_equal(read_rgb(store.result_dir(handed) / "take01/0002.png"),
                                  expected_pixels(package, 2, 3))

    other_spec = queue(store, package, seed=4)
    prepare(other_spec, {"seed": 5})
    other_folder = queue(store, package, seed=6)
    prepare(other_folder, {"seed": 6}, folder=package)
    never = queue(store, package, seed=7)
    checks = engine.checks
    for job_id in (other_spec, other_folder, never):
        job = runner.run_next()
        assert job.id == job_id and job.state == "done"
    assert engine.checks == checks + 3  # each loaded and checked by the runner itself
    np.testing.assert_array_equal(read_rgb(store.result_dir(other_folder) / "take01/0001.png"),
                                  expected_pixels(package, 1, 6))


def test_runner_keeps_a_bounded_number_of_checked_packages(data_dir, make_package):
    store = JobStore(data_dir)
    package = make_package(frames=1)
    engine = InvertEngine()
    runner = Runner(store, engine)
    ids = [queue(store, package) for _ in range(PREPARED_MAX + 2)]
    loaded = ShotPackage.load(package)
    for job_id in ids:
        runner.prepared(job_id, dataclasses.replace(loaded, source=FolderSource(store.get(job_id).package)),
                        spec_to_dict(JobSpec()))
    runner.forget(ids[-1])
    while runner.run_next() is not None:
        pass
    assert all(store.get(job_id).state == "done" for job_id in ids)
    assert engine.checks == 3  # the two oldest were dropped, the last forgotten: only those were checked


def test_runner_goes_on_after_a_failure(data_dir, make_package, runners):
    store = JobStore(data_dir)
    package = make_package()
    bad, good = queue(store, package, options={"mode": "crash"}), queue(store, package)
    runner = Runner(store, InvertEngine(), idle_poll=0.05)
    runners.append(runner)
    runner.start()
    wait_until(lambda: store.get(good).state == "done", what="the second job")
    assert store.get(bad).state == "failed"


def test_cancel_a_running_job(data_dir, make_package, runners):
    store = JobStore(data_dir)
    job_id = queue(store, make_package(frames=20))
    runner = Runner(store, InvertEngine(delay=0.1), idle_poll=0.05)
    runners.append(runner)
    runner.start()
    wait_until(lambda: store.get(job_id).step >= 2, what="the job to make progress")
    before, job = store.request_cancel(job_id)
    assert before == "running"
    job = wait_until(lambda: (j := store.get(job_id)).state == "cancelled" and j, what="the cancel")
    wait_until(lambda: runner.current is None, what="the runner to tidy up")
    assert job.step < 20 and job.results == [] and job.error is None
    assert not store.job_dir(job_id).exists() or list(store.job_dir(job_id).iterdir()) == []


def test_stop_interrupts_and_requeues_the_running_job(data_dir, make_package, runners):
    store = JobStore(data_dir)
    package = make_package(frames=20)
    job_id, waiting = queue(store, package), queue(store, package, zipped=True)
    runner = Runner(store, InvertEngine(delay=0.1), idle_poll=0.05)
    runner.start()
    wait_until(lambda: store.get(job_id).step >= 1, what="the job to start")
    assert runner.stop(10)
    job = store.get(job_id)
    assert job.state == "queued" and job.attempts == 0 and job.step == 0  # a graceful stop is not an attempt
    assert (store.job_dir(job_id) / "package").is_dir()
    assert not list(store.job_dir(job_id).glob("staging-*"))
    assert store.get(waiting).state == "queued"

    store.close()
    store = JobStore(data_dir)  # the next start picks both up, in order
    store.recover()
    runner = Runner(store, InvertEngine(), idle_poll=0.05)
    runners.append(runner)
    runner.start()
    wait_until(lambda: store.get(waiting).state == "done", what="both jobs")
    assert store.get(job_id).state == "done" and store.get(job_id).finished <= store.get(waiting).finished


def test_paused_runner_takes_nothing_until_resumed(data_dir, make_package, runners):
    store = JobStore(data_dir)
    job_id = queue(store, make_package())
    runner = Runner(store, InvertEngine(), paused=True, idle_poll=0.05)
    runners.append(runner)
    runner.start()
    time.sleep(0.3)
    assert store.get(job_id).state == "queued"
    runner.resume()
    wait_until(lambda: store.get(job_id).state == "done", what="the job")


def test_progress_callback_raises_cancelled(data_dir, make_package):
    """The callback an engine gets raises Cancelled itself: engines need no store access."""
    store = JobStore(data_dir)
    job_id = queue(store, make_package())
    caught = []

    class Obedient(InvertEngine):
        def run(self, package, spec, out_dir, progress):
            progress(Progress(0, 3, 1))
            store.request_cancel(job_id)
            try:
                progress(Progress(1, 3, 2))
            except Cancelled:
                caught.append(True)
                raise
            return []

    job = Runner(store, Obedient()).run_next()
    assert caught == [True] and job.state == "cancelled"


def test_concurrent_readers_while_the_runner_writes(data_dir, make_package, runners):
    store = JobStore(data_dir)
    job_id = queue(store, make_package(frames=10))
    runner = Runner(store, InvertEngine(delay=0.01), idle_poll=0.05)
    runners.append(runner)
    errors = []

    def read():
        try:
            for _ in range(200):
                store.get(job_id)
                store.counts()
        except Exception as error:  # pragma: no cover - the assertion reports it
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    runner.start()
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join(20)
    wait_until(lambda: store.get(job_id).state == "done", what="the job")
    assert errors == []
