"""A bit part's reference image travels in the shot package as reference/<name>.png (IP-Adapter input)."""

import json

import bpy
import cv2
import numpy as np
import pytest

from standin.addon import blocking, pass_pipeline, shots
from standin.operators.characters import add_character


def _scene_with_two(scene, frames=2):
    """Ada (a bit part with a reference image) and Ben side by side in one full shot."""
    scene.standin.project.aspect = "16:9"
    scene.standin.project.resolution = 128
    blocking.ensure_set(scene, "Yard", prompt="yard", seed=3)
    blocking.add_piece(scene, "wall", name="Back wall", location=(0, 2.0, 0), length=8.0)
    ada = add_character(scene, "Ada", "a woman in a green coat", location=(-0.5, 0, 0))
    ben = add_character(scene, "Ben", "a man", location=(0.5, 0, 0))
    shot = shots.add_shot(scene, duration=frames)
    shot.shot_size, shot.lens = "FS", 35.0
    shot.subjects.add().name = "Ada"
    shot.subjects.add().name = "Ben"
    shots.frame_shot(scene, shot)
    return shot, ada, ben


def _run(scene, shot, out):
    return pass_pipeline.PassJob(scene, [shot.name], out_root=out).run()[0]


def _reference_source(path, width=1600, height=900):
    """An RGBA PNG larger than the package limit: a red half and a transparent half."""
    pixels = np.zeros((height, width, 4), np.uint8)
    pixels[:, : width // 2] = (0, 0, 255, 255)  # BGRA: opaque red
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.mark.bpy45
def test_reference_is_copied_as_png_and_recorded_without_changing_the_render_hash(scene, tmp_path):
    shot, ada, ben = _scene_with_two(scene)
    out = tmp_path / "out"
    assert _run(scene, shot, out).status == "rendered"
    package = out / shot.name
    before = json.loads((package / "shot.json").read_text())
    assert not (package / "reference").exists()

    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"), check_existing=False)
    _reference_source(tmp_path / "ada ref.png")
    ada.reference_image = "//ada ref.png"  # Blender-relative, as the file browser stores it
    result = _run(scene, shot, out)
    assert result.status == "metadata" and result.renders == 0  # the passes are not rendered again
    data = json.loads((package / "shot.json").read_text())
    assert data["render_hash"] == before["render_hash"] and data["content_hash"] != before["content_hash"]
    entries = {c["name"]: c for c in data["characters"]}
    assert entries["Ada"]["reference"] == "reference/Ada.png" and "reference" not in entries["Ben"]
    copy = cv2.imread(str(package / "reference" / "Ada.png"), cv2.IMREAD_UNCHANGED)
    assert copy.shape == (576, 1024, 3)  # long edge 1024, alpha laid over white
    assert tuple(copy[288, 100]) == (0, 0, 255) and tuple(copy[288, 900]) == (255, 255, 255)
    assert _run(scene, shot, out).status == "skipped"

    # a full render writes it too; an image edited in place is copied again without a render
    ada.stand_in.location.x -= 0.1
    assert _run(scene, shot, out).status == "rendered"
    assert (package / "reference" / "Ada.png").is_file()
    cv2.imwrite(str(tmp_path / "ada ref.png"), np.full((64, 32, 3), (255, 0, 0), np.uint8))
    assert _run(scene, shot, out).status == "metadata"
    copy = cv2.imread(str(package / "reference" / "Ada.png"))
    assert copy.shape == (64, 32, 3) and tuple(copy[0, 0]) == (255, 0, 0)

    # removing the reference removes the copy
    ada.reference_image = ""
    assert _run(scene, shot, out).status == "metadata"
    assert "reference" not in json.loads((package / "shot.json").read_text())["characters"][0]
    assert not (package / "reference" / "Ada.png").exists()


@pytest.mark.bpy45
def test_a_missing_or_unreadable_reference_is_a_warning_not_a_failure(scene, tmp_path):
    shot, ada, ben = _scene_with_two(scene)
    ada.reference_image = str(tmp_path / "gone.png")
    (tmp_path / "not-an-image.png").write_text("hello")
    ben.reference_image = str(tmp_path / "not-an-image.png")
    result = _run(scene, shot, tmp_path / "out")
    assert result.status == "rendered", result.message
    data = json.loads((tmp_path / "out" / shot.name / "shot.json").read_text())
    assert not any("reference" in c for c in data["characters"])
    assert not (tmp_path / "out" / shot.name / "reference").exists()
    warnings = [w for w in data["warnings"] if "reference image" in w]
    assert len(warnings) == 2 and warnings == [w for w in result.warnings if "reference image" in w]
    assert "Ada: the reference image" in warnings[0] and "cannot be read" in warnings[0]
    assert "Ben: the reference image" in warnings[1] and "not an image" in warnings[1]
