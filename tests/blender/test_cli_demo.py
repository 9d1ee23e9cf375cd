"""`standin demo --out DIR`: the sample scene, built by the real command, opened back in Blender."""

import json
import pathlib
import subprocess
import sys

import bpy
import pytest


@pytest.mark.bpy45
def test_demo_builds_saves_and_renders_the_sample_scene(tmp_path):
    out = tmp_path / "demo"
    command = pathlib.Path(sys.executable).with_name("standin")
    result = subprocess.run([str(command), "demo", "--out", str(out), "--preview-width", "320",
                             "--passes-scale", "0.2", "--animatic-scale", "0.25"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"saved {out / 'scene.blend'}" in result.stdout
    for name in ("SQ010_SH0010", "SQ010_SH0020", "SQ010_SH0030"):
        assert name in result.stdout
        png = out / f"{name}.png"
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        package = out / "standin" / name / "passes"
        assert json.loads((package / "shot.json").read_text())["complete"] is True
        assert f"{name}:" in result.stdout and str(package) in result.stdout
        take = out / "standin" / name / "v001"  # the whole path: passes → sketch engine → a take
        assert json.loads((take / "take.json").read_text())["engine"] == "sketch"
        assert f"{name}: v001" in result.stdout and str(take) in result.stdout
    assert "Saved:" not in result.stdout  # Blender's own render log stays out of our output
    # it ends with the animatic (the takes, in shot order), the board and the cut, next to scene.blend
    assert f"-> {out / 'standin' / 'animatic.mp4'}" in result.stdout
    assert "animatic: 3 shots, 7.5 s (180 frames at 24 fps), 320x134" in result.stdout
    for line in ("board.pdf", "board.png", "cut.otio"):
        assert str(out / "standin" / line) in result.stdout
        assert (out / "standin" / line).stat().st_size > 1000
    assert (out / "standin" / "animatic.mp4").read_bytes()[4:8] == b"ftyp"

    bpy.ops.wm.open_mainfile(filepath=str(out / "scene.blend"))
    scene = bpy.context.scene
    data = scene.standin
    assert [c.name for c in data.cast] == ["Mara", "Theo"]
    assert all(c.stand_in is not None and c.stand_in.name in scene.objects for c in data.cast)
    pieces = {o["standin_piece"] for o in data.sets["Kitchen"].collection.objects}
    assert {"wall", "table", "chair"} <= pieces
    shots = list(data.shots)
    assert len(shots) >= 3
    wide, two_shot, close = shots[:3]
    assert wide.shot_size in ("WS", "EWS")
    assert (two_shot.shot_size, two_shot.variant) == ("MS", "TWO_SHOT")
    assert (close.shot_size, close.move) == ("CU", "DOLLY_IN")
    assert all(s.status != "BROKEN" for s in shots)
    assert all(s.active_take is not None and s.active_take.folder.startswith("//") for s in shots)
    for shot in shots:  # the timeline cuts to each shot's camera
        scene.frame_set(shot.frame_start)
        assert scene.camera == shot.camera


def test_demo_reports_an_output_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    command = pathlib.Path(sys.executable).with_name("standin")
    result = subprocess.run([str(command), "demo", "--out", str(blocker / "demo")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "cannot write" in result.stderr
