"""`standin passes` on a saved .blend, and the passes operators in Blender."""

import json
import pathlib
import subprocess
import sys

import bpy
import pytest

from standin.addon import blocking, pass_pipeline, shots
from standin.operators.characters import add_character


def _save_small_project(scene, path: pathlib.Path) -> list[str]:
    scene.standin.project.aspect = "16:9"
    scene.standin.project.resolution = 256
    blocking.add_piece(scene, "wall", location=(0, 2.0, 0))
    add_character(scene, "Ada", location=(0, 0, 0))
    names = []
    for size in ("FS", "MCU"):
        shot = shots.add_shot(scene, duration=3)
        shot.shot_size = size
        shot.subjects.add().name = "Ada"
        shots.frame_shot(scene, shot)
        names.append(shot.name)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    return names


def _standin(*args, timeout=600):
    command = pathlib.Path(sys.executable).with_name("standin")
    return subprocess.run([str(command), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.bpy45
def test_cli_renders_every_shot_then_skips_unchanged_ones(scene, tmp_path):
    names = _save_small_project(scene, tmp_path / "scene.blend")
    result = _standin("passes", tmp_path / "scene.blend", "--all", "--out", tmp_path / "out", "--scale", "0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 shots have passes" in result.stdout
    for name in names:
        data = json.loads((tmp_path / "out" / name / "shot.json").read_text())
        assert data["complete"] and (data["width"], data["height"]) == (128, 72)
    again = _standin("passes", tmp_path / "scene.blend", "--shot", names[0], "--out", tmp_path / "out",
                     "--scale", "0.5")
    assert again.returncode == 0 and "unchanged" in again.stdout


@pytest.mark.bpy45
def test_cli_writes_next_to_the_blend_by_default_and_reports_bad_input(scene, tmp_path):
    names = _save_small_project(scene, tmp_path / "scene.blend")
    result = _standin("passes", tmp_path / "scene.blend", "--shot", names[1], "--scale", "0.25")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "standin" / names[1] / "passes" / "shot.json").is_file()

    missing = _standin("passes", tmp_path / "nope.blend")
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    unknown = _standin("passes", tmp_path / "scene.blend", "--shot", "SQ999_SH0010")
    assert unknown.returncode == 2 and "no shot named SQ999_SH0010" in unknown.stderr
    too_big = _standin("passes", tmp_path / "scene.blend", "--scale", "10")
    assert too_big.returncode == 1 and "FAILED" in too_big.stderr and "Traceback" not in too_big.stderr


@pytest.mark.bpy45
def test_render_passes_operator_then_show_a_pass_behind_the_camera(scene, tmp_path):
    names = _save_small_project(scene, tmp_path / "scene.blend")
    data = scene.standin
    data.shot_index = 0
    with pytest.raises(RuntimeError, match="no .* pass yet|render its passes first"):
        bpy.ops.standin.passes_show(kind="openpose")
    assert bpy.ops.standin.passes_render(scale=0.5) == {"FINISHED"}
    package = pass_pipeline.package_dir_for(scene, names[0])
    assert package == tmp_path / "standin" / names[0] / "passes" and (package / "shot.json").is_file()
    assert not (tmp_path / "standin" / names[1]).exists()  # only the active shot
    assert bpy.ops.standin.passes_show(kind="openpose") == {"FINISHED"}
    shot = data.shots[0]
    backgrounds = shot.camera.data.background_images
    assert len(backgrounds) == 1 and shot.camera.data.show_background_images
    image = backgrounds[0].image
    assert image.source == "SEQUENCE" and "openpose" in image.filepath
    assert bpy.ops.standin.passes_show(kind="NONE") == {"FINISHED"}
    assert len(shot.camera.data.background_images) == 0

    assert bpy.ops.standin.passes_render(all_shots=True, scale=0.5) == {"FINISHED"}
    assert (tmp_path / "standin" / names[1] / "passes" / "shot.json").is_file()


def test_render_passes_needs_a_saved_file_for_a_relative_output_folder(scene):
    add_character(scene, "Ada")
    shots.add_shot(scene, duration=2)
    scene.standin.project.resolution = 128
    with pytest.raises(RuntimeError, match="Save the .blend first"):
        bpy.ops.standin.passes_render()
