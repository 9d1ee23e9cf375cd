# SPDX-License-Identifier: GPL-3.0-or-later
"""Sketch engine over HTTP, end to end, against the same engine called in-process: overhead ratio.

The packages are the demo's two-shot, its passes rendered at 512×512 with Blender (40 and 48
frames; where bpy is not installed, synthetic packages of the same size stand in). In-process (the
baseline, measured in the same run): ``ShotPackage.load``, ``engine.check`` and ``engine.run`` on
the package folder, as the server's runner does. Over HTTP, what a client does, against a real
uvicorn server on 127.0.0.1: zip the package folder (stored), POST it, follow the job's server-sent
events to ``done``, download ``results.zip`` and read every file in it (CRC checked).

Five interleaved rounds of each; the figures are each side's best round (the machine is shared:
the best round is the least disturbed one), with the median overhead beside them, and the CPU time
of this process (client, server and engine all run in it), which other load disturbs less than the
clock. Jobs: 40 frames × 1 take, 48 × 1, and 48 × 4 (four takes of one upload share its cost). For
the first, the earlier client path too (poll the job, one request per result file); the same job
with the server's data folder on tmpfs, which shows how much of the overhead is the filesystem (the
server keeps the upload zip as the job's package and reads it in place, so what it writes is the
upload, the results and SQLite); and the engine in-process reading the package from that zip
rather than the folder (the same result bytes, and how its time compares). Aim: overhead <= 10 % of
the engine's own time.
"""

import io
import json
import pathlib
import statistics
import sys
import tempfile
import time
import zipfile

SIZE = 512
ROUNDS = 5
#: (frames, takes) of each job measured
JOBS = ((40, 1), (48, 1), (48, 4))


def _packages(folder: pathlib.Path, lengths) -> tuple[dict[int, pathlib.Path], str]:
    """{frames: package folder} for each length, rendered from the demo (or synthetic without bpy)."""
    try:
        import bpy  # noqa: F401  (only to know whether Blender is here)
    except ImportError:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
        from shot_packages import write_package

        return {n: write_package(folder / f"synthetic{n}", frames=n, width=SIZE, height=SIZE) for n in lengths}, \
            "synthetic package"
    from standin.addon import demo, pass_pipeline
    from standin.addon.quiet import blender_output_silenced
    from standin.cli import start_blender

    scene = start_blender().context.scene
    demo.build_demo(scene)
    scene.standin.project.aspect = "1:1"
    scene.standin.project.resolution = SIZE
    shot = scene.standin.shots[1]  # SQ010_SH0020, the medium two-shot
    packages = {}
    for frames in lengths:
        shot.frame_end = shot.frame_start + frames - 1
        with blender_output_silenced():
            result = pass_pipeline.PassJob(scene, [shot.name], out_root=folder / f"passes{frames}").run()[0]
        assert result.status == "rendered", result.message
        packages[frames] = result.package_dir
    return packages, f"demo {shot.name}"


def _zip(folder: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _submit(http, upload: bytes, takes: int) -> str:
    response = http.post("/v1/jobs", files=[("package", ("p.zip", upload, "application/zip"))],
                         data={"spec": json.dumps({"seed": 1, "takes": takes})})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _over_http(url: str, package: pathlib.Path, takes: int, runner) -> dict[str, float]:
    """The client path: zip + POST, events until done, results.zip; seconds per phase and in all, and
    the CPU seconds of this process (client and server) until the runner has tidied up after the job."""
    import httpx

    times = {}
    cpu = time.process_time()
    start = time.perf_counter()
    upload = _zip(package)
    times["zip"] = time.perf_counter() - start
    with httpx.Client(base_url=url, timeout=120) as http:
        job_id = _submit(http, upload, takes)
        times["post"] = time.perf_counter() - start - times["zip"]
        job, event = None, None
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event in ("done", "failed", "cancelled"):
                    job = json.loads(line[len("data: "):])
        assert job is not None and job["state"] == "done", job
        times["wait"] = time.perf_counter() - start - times["zip"] - times["post"]
        mark = time.perf_counter()
        response = http.get(job["links"]["results"])
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            names = [info.filename for info in archive.infolist()]
            assert names == [result["path"] for result in job["results"]]
            for name in names:
                archive.read(name)  # checks each file's CRC
        times["download"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    while runner.current is not None:  # removing the job's upload, applying the cleanup policy
        time.sleep(0.001)
    times["cpu"] = time.process_time() - cpu
    return times


def _polling_file_by_file(url: str, package: pathlib.Path, takes: int, runner) -> float:
    """The earlier client path: zip + POST, poll the job every 5 ms, one GET per result file."""
    import httpx

    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as http:
        job_id = _submit(http, _zip(package), takes)
        while (job := http.get(f"/v1/jobs/{job_id}").json())["state"] not in ("done", "failed", "cancelled"):
            time.sleep(0.005)
        assert job["state"] == "done", job
        for result in job["results"]:
            assert http.get(result["url"]).status_code == 200
    seconds = time.perf_counter() - start
    while runner.current is not None:  # (not timed) so that the next round starts on a quiet server
        time.sleep(0.001)
    return seconds


def _in_process(package_dir: pathlib.Path, takes: int, out: pathlib.Path) -> tuple[float, float]:
    """Seconds and CPU seconds of the engine run the way the runner runs it."""
    from standin.ai_backend.engine import JobSpec
    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.package import ShotPackage

    cpu = time.process_time()
    start = time.perf_counter()
    package = ShotPackage.load(package_dir)  # a folder, or (for the comparison) the upload zip
    engine = SketchEngine()
    spec = JobSpec(seed=1, takes=takes)
    engine.check(package, spec)
    engine.run(package, spec, out, lambda progress: None)
    return time.perf_counter() - start, time.process_time() - cpu


def _from_the_zip(package: pathlib.Path, takes: int, folder: pathlib.Path) -> str:
    """The engine in-process on the package folder and on its upload zip read in place, interleaved:
    the same files, byte for byte, and each side's best time."""
    folder.mkdir(parents=True, exist_ok=True)
    upload = folder / "upload.zip"
    upload.write_bytes(_zip(package))
    times: dict[str, list[float]] = {"folder": [], "zip": []}
    outputs = {}
    for round_number in range(ROUNDS):
        for kind, source in (("folder", package), ("zip", upload)):
            out = folder / f"{kind}{round_number}"
            times[kind].append(_in_process(source, takes, out)[0])
            outputs[kind] = {path.relative_to(out): path.read_bytes() for path in sorted(out.rglob("*.png"))}
    same = outputs["folder"] == outputs["zip"] and len(outputs["zip"]) > 0
    folder_ms, zip_ms = 1000 * min(times["folder"]), 1000 * min(times["zip"])
    return (f"  engine in-process reading the upload zip in place: {zip_ms:.0f} ms against {folder_ms:.0f} ms from "
            f"the folder ({100 * (zip_ms / folder_ms - 1):+.1f} %), "
            f"{'the same' if same else 'DIFFERENT'} {len(outputs['zip'])} result files")


def _on_tmpfs(package: pathlib.Path, takes: int) -> str | None:
    """The small job again with the server's data folder and the in-process output in memory
    (/dev/shm, where there is one): what is left of the overhead where creating files costs ~nothing."""
    import os

    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.local_server import LiveServer
    from standin.ai_backend.server import create_app

    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        return None
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        folder = pathlib.Path(folder)
        server = LiveServer(create_app(SketchEngine(), folder / "data"))
        try:
            runner = server.app.state.runner
            _over_http(server.url, package, takes, runner)
            http_runs, local_times = [], []
            for round_number in range(ROUNDS):
                http_runs.append(_over_http(server.url, package, takes, runner))
                local_times.append(_in_process(package, takes, folder / f"local{round_number}")[0])
        finally:
            server.stop()
    best, local = min(http_runs, key=lambda run: run["total"]), min(local_times)
    return (f"  same job, server data and in-process output on tmpfs (creating files is cheap there): overhead "
            f"{100 * (best['total'] / local - 1):.1f} % (POST to 202 {1000 * best['post']:.0f} ms)")


def run() -> None:
    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.local_server import LiveServer
    from standin.ai_backend.server import create_app

    lines = []
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        packages, source = _packages(folder, sorted({frames for frames, _ in JOBS}))
        server = LiveServer(create_app(SketchEngine(), folder / "data"))
        try:
            runner = server.app.state.runner
            _over_http(server.url, packages[JOBS[0][0]], 1, runner)  # warm-up: imports, page cache, first calls
            _in_process(packages[JOBS[0][0]], 1, folder / "warm")
            for index, (frames, takes) in enumerate(JOBS):
                package = packages[frames]
                upload = len(_zip(package))
                files = sum(1 for path in package.rglob("*") if path.is_file())
                http_runs, local_runs, old_times = [], [], []
                for round_number in range(ROUNDS):
                    http_runs.append(_over_http(server.url, package, takes, runner))
                    local_runs.append(_in_process(package, takes, folder / f"local{index}-{round_number}"))
                    if index == 0:
                        old_times.append(_polling_file_by_file(server.url, package, takes, runner))
                best = min(http_runs, key=lambda run: run["total"])
                local_times = [seconds for seconds, _ in local_runs]
                http, local = best["total"], min(local_times)
                median = statistics.median(run["total"] for run in http_runs) / statistics.median(local_times)
                http_cpu, local_cpu = min(run["cpu"] for run in http_runs), min(cpu for _, cpu in local_runs)
                made = frames * takes
                lines.append(
                    f"sketch at {SIZE}x{SIZE}, {frames} frames x {takes} take{'s' if takes > 1 else ''} ({source}, "
                    f"upload {files} files, {upload / 2**20:.1f} MiB): in-process {made / local:.1f} frames/s, "
                    f"over HTTP {made / http:.1f} frames/s end to end, ratio {http / local:.2f}, overhead "
                    f"{100 * (http / local - 1):.1f} % (median {100 * (median - 1):.1f} %)")
                lines.append(
                    f"  {1000 * (http - local):.0f} ms a job: zip {1000 * best['zip']:.0f} ms, POST to 202 "
                    f"{1000 * best['post']:.0f} ms, events to done {1000 * best['wait']:.0f} ms, results.zip "
                    f"{1000 * best['download']:.0f} ms; in-process {1000 * local:.0f} ms")
                lines.append(f"  CPU time of client and server (this process): {1000 * http_cpu:.0f} ms against "
                             f"{1000 * local_cpu:.0f} ms in-process, +{100 * (http_cpu / local_cpu - 1):.1f} %")
                if old_times:
                    old = min(old_times)
                    lines.append(f"  same job, earlier client path (poll every 5 ms, {made} file downloads): "
                                 f"{made / old:.1f} frames/s, overhead {100 * (old / local - 1):.1f} %")
                    if (line := _on_tmpfs(package, takes)) is not None:
                        lines.append(line)
                    lines.append(_from_the_zip(package, takes, folder / "from-zip"))
        finally:
            server.stop()
    for line in lines:
        print(line)
