"""End to end: a shot blocked in (headless) Blender → its passes → the backend over HTTP → storyboard frames."""

import io
import json
import time
import zipfile

import bpy
import cv2
import httpx
import numpy as np
import pytest

import standin
from standin.addon import blocking, pass_pipeline, shots
from standin.addon.properties import ensure_project
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.local_server import LiveServer
from standin.ai_backend.server import create_app
from standin.operators.characters import add_character


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "standin"):
        standin.register()
    scene = bpy.context.scene
    ensure_project(scene)
    return scene


def test_a_blocked_shot_comes_back_as_storyboard_frames(scene, tmp_path):
    scene.standin.project.aspect = "16:9"
    scene.standin.project.resolution = 256
    blocking.add_piece(scene, "wall", location=(0, 2.0, 0))
    add_character(scene, "Ada", color=(0.9, 0.1, 0.1, 1.0), location=(0, 0, 0))
    shot = shots.add_shot(scene, duration=3)
    shot.shot_size = "FS"
    shot.subjects.add().name = "Ada"
    shots.frame_shot(scene, shot)
    result = pass_pipeline.PassJob(scene, [shot.name], out_root=tmp_path / "passes").run()[0]
    assert result.status == "rendered", result.message

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in result.package_dir.rglob("*"):
            if path.is_file():
                bundle.write(path, path.relative_to(result.package_dir).as_posix())
    server = LiveServer(create_app(SketchEngine(), tmp_path / "backend"))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            response = http.post("/v1/jobs", files=[("package", ("shot.zip", archive.getvalue(), "application/zip"))],
                                 data={"spec": json.dumps({"seed": 7})})
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            deadline = time.monotonic() + 60
            while (job := http.get(f"/v1/jobs/{job_id}").json())["state"] not in ("done", "failed", "cancelled"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert job["state"] == "done", job
            frames = sorted(r["frame"] for r in job["results"] if r["kind"] == "frame")
            assert frames == list(range(shot.frame_start, shot.frame_end + 1))
            first = http.get(job["results"][0]["url"]).content
    finally:
        server.stop()
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(result.package_dir / "mask" / "Ada" / f"{shot.frame_start:04d}.png"), 0) > 0
    assert image.shape[:2] == mask.shape == (144, 256)
    ada = image[mask].astype(int).mean(axis=0)
    assert ada[0] > ada[2] + 30  # Ada comes back washed in her red
