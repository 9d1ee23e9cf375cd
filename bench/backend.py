# SPDX-License-Identifier: GPL-3.0-or-later
"""Sketch engine over HTTP, end to end, against the same engine called in-process: overhead ratio.

The package is the demo's two-shot, its passes rendered at 512×512 (40 frames). In-process: the
engine's ``run`` on the unpacked package. Over HTTP (a real uvicorn server on 127.0.0.1): zip and
upload the package, the server checks it and queues the job, poll until done, download every frame.
Aim: overhead <= 10 % of the engine's own time.
"""

import io
import json
import pathlib
import statistics
import tempfile
import time
import zipfile

FRAMES = 40
ROUNDS = 3


def _demo_package(folder: pathlib.Path) -> pathlib.Path:
    from standin.addon import demo, pass_pipeline
    from standin.addon.quiet import blender_output_silenced
    from standin.cli import start_blender

    scene = start_blender().context.scene
    demo.build_demo(scene)
    scene.standin.project.aspect = "1:1"
    scene.standin.project.resolution = 512
    shot = scene.standin.shots[1]
    shot.frame_end = shot.frame_start + FRAMES - 1
    with blender_output_silenced():
        result = pass_pipeline.PassJob(scene, [shot.name], out_root=folder).run()[0]
    assert result.status == "rendered", result.message
    return result.package_dir


def _zip(folder: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _over_http(url: str, package: pathlib.Path) -> float:
    import httpx

    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/v1/jobs", files=[("package", ("p.zip", _zip(package), "application/zip"))],
                             data={"spec": json.dumps({"seed": 1})})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        while (job := http.get(f"/v1/jobs/{job_id}").json())["state"] not in ("done", "failed", "cancelled"):
            time.sleep(0.005)
        assert job["state"] == "done", job
        for result in job["results"]:
            assert http.get(result["url"]).status_code == 200
    return time.perf_counter() - start


def _in_process(package_dir: pathlib.Path, out: pathlib.Path) -> float:
    from standin.ai_backend.engine import JobSpec
    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.package import ShotPackage

    start = time.perf_counter()
    package = ShotPackage.load(package_dir)
    engine = SketchEngine()
    spec = JobSpec(seed=1)
    engine.check(package, spec)
    engine.run(package, spec, out, lambda progress: None)
    return time.perf_counter() - start


def run() -> None:
    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.local_server import LiveServer
    from standin.ai_backend.server import create_app

    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        package = _demo_package(folder / "passes")
        server = LiveServer(create_app(SketchEngine(), folder / "data"))
        try:
            _over_http(server.url, package)  # warm-up
            http_times, local_times = [], []
            for round_number in range(ROUNDS):
                http_times.append(_over_http(server.url, package))
                local_times.append(_in_process(package, folder / f"local{round_number}"))
        finally:
            server.stop()
    http, local = statistics.median(http_times), statistics.median(local_times)
    print(f"sketch at 512x512, {FRAMES} frames: in-process {FRAMES / local:.1f} frames/s, over HTTP "
          f"{FRAMES / http:.1f} frames/s end to end, overhead {100 * (http / local - 1):.1f} %")
