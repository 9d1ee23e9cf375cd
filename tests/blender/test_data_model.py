"""The StandIn data model lives in the .blend: it survives save and reload, and old files open."""

import bpy
import pytest

from standin.addon import shots
from standin.addon.properties import ensure_project


def _reload(tmp_path, name="scene.blend"):
    path = tmp_path / name
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return bpy.context.scene


@pytest.mark.bpy45
def test_project_cast_sets_and_shots_survive_save_and_reload(scene, tmp_path):
    data = scene.standin
    project = data.project
    project.style_prompt = "charcoal sketch"
    project.negative_prompt = "text"
    project.aspect = "2.39"
    project.resolution = 2048
    project.fps = "23.976"
    project.backend_url = "http://127.0.0.1:9000"
    project.backend_token = "s3cret"
    character = data.cast.add()
    character.name = "Mara"
    character.description = "red raincoat"
    character.color = (0.1, 0.2, 0.3, 1.0)
    character.lora_file, character.lora_trigger, character.lora_weight = "mara_v2.safetensors", "mara", 0.7
    character.reference_image = "//refs/mara.png"
    kitchen = data.sets.add()
    kitchen.name, kitchen.prompt, kitchen.seed = "Kitchen", "night kitchen", 99
    kitchen.collection = bpy.data.collections.new("SET Kitchen")
    shot = shots.add_shot(scene, duration=30)
    shot.shot_size, shot.lens, shot.action, shot.notes, shot.status = "CU", 85.0, "she turns", "hold", "READY"
    shot.subjects.add().name = "Mara"

    scene = _reload(tmp_path)
    data = scene.standin
    assert scene.render.resolution_x == 2048 and scene.render.resolution_y == 856
    assert scene.render.fps == 24 and scene.render.fps_base == pytest.approx(1.001)
    assert data.project.style_prompt == "charcoal sketch" and data.project.fps == "23.976"
    assert data.project.backend_url == "http://127.0.0.1:9000" and data.project.backend_token == "s3cret"
    assert data.project.output_dir == "//standin/"
    mara = data.cast["Mara"]
    assert mara.lora_file == "mara_v2.safetensors" and mara.lora_weight == pytest.approx(0.7)
    assert tuple(mara.color) == pytest.approx((0.1, 0.2, 0.3, 1.0))
    assert mara.reference_image == "//refs/mara.png"
    assert data.sets["Kitchen"].seed == 99 and data.sets["Kitchen"].collection.name == "SET Kitchen"
    shot = data.shots["SQ010_SH0010"]
    assert (shot.shot_size, shot.lens, shot.status) == ("CU", 85.0, "READY")
    assert shot.action == "she turns" and [s.name for s in shot.subjects] == ["Mara"]
    assert shot.camera is not None and scene.timeline_markers["SQ010_SH0010"].camera == shot.camera


@pytest.mark.bpy45
def test_a_file_saved_without_standin_opens_and_gets_a_project(factory_scene, tmp_path):
    import standin

    standin.unregister()
    try:
        bpy.ops.mesh.primitive_cube_add()
        bpy.context.scene.render.resolution_x = 1234
        path = tmp_path / "old.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    finally:
        standin.register()
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    assert scene.standin.data_version == 0 and len(scene.standin.shots) == 0
    assert scene.render.resolution_x == 1234  # opening alone changes nothing
    assert bpy.ops.standin.shots_check() == {"FINISHED"}
    ensure_project(scene)
    assert scene.standin.data_version >= 1 and scene.render.resolution_x == 1920
    assert "Cube" in bpy.data.objects


@pytest.mark.bpy45
def test_a_broken_shot_is_found_when_the_file_opens(scene, tmp_path):
    ok = shots.add_shot(scene).name
    doomed_shot = shots.add_shot(scene)
    doomed_shot.camera = None  # e.g. the camera was removed in another tool
    doomed = doomed_shot.name  # (RNA references die with the file they came from)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "broken.blend"), check_existing=False)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "broken.blend"))
    data = bpy.context.scene.standin
    assert data.shots[doomed].status == "BROKEN"
    assert data.shots[ok].status == "BLOCKING"
