"""Shots in a real (headless) Blender scene: names, ranges, cameras and the cut."""

import bpy
import pytest

from standin.addon import handlers, shots


def _names(scene):
    return [s.name for s in scene.standin.shots]


@pytest.mark.bpy45
def test_shots_cut_from_camera_to_camera_when_scrubbing(scene):
    first = shots.add_shot(scene, duration=24)
    second = shots.add_shot(scene, duration=12)
    assert _names(scene) == ["SQ010_SH0010", "SQ010_SH0020"]
    assert (second.frame_start, second.frame_end) == (25, 36)
    assert (scene.frame_start, scene.frame_end) == (1, 36)
    markers = {m.name: m for m in scene.timeline_markers}
    assert markers["SQ010_SH0010"].camera == first.camera and markers["SQ010_SH0020"].frame == 25
    for frame, expected in ((1, first), (24, first), (25, second), (36, second), (3, first)):
        scene.frame_set(frame)
        assert scene.camera == expected.camera, frame


@pytest.mark.bpy45
def test_insert_between_two_shots_is_a_cut_in(scene):
    shots.add_shot(scene, duration=48)
    shots.add_shot(scene, duration=24)
    inserted = shots.add_shot(scene, after="SQ010_SH0010")
    assert _names(scene) == ["SQ010_SH0010", "SQ010_SH0015", "SQ010_SH0020"]
    first = scene.standin.shots["SQ010_SH0010"]
    assert (first.frame_start, first.frame_end) == (1, 24)
    assert (inserted.frame_start, inserted.frame_end) == (25, 48)
    scene.frame_set(30)
    assert scene.camera == inserted.camera


@pytest.mark.bpy45
def test_duplicate_rename_reorder_and_remove(scene):
    shots.add_shot(scene)
    source = shots.add_shot(scene)
    source.camera.location = (1, 2, 3)
    source.lens = 85.0
    copy = shots.duplicate_shot(scene, "SQ010_SH0020")
    assert copy.name == "SQ010_SH0030" and copy.lens == 85.0
    assert copy.camera != source.camera
    assert tuple(copy.camera.location) == pytest.approx((1, 2, 3))
    assert copy.frame_start == source.frame_end + 1

    with pytest.raises(shots.ShotError, match="already a shot named"):
        shots.rename_shot(scene, "SQ010_SH0030", "SQ010_SH0010")
    with pytest.raises(shots.ShotError, match="SQ010_SH0010 form"):
        shots.rename_shot(scene, "SQ010_SH0030", "closeup")
    shots.rename_shot(scene, "SQ010_SH0030", "SQ020_SH0010")
    assert scene.timeline_markers.get("SQ020_SH0010").camera == copy.camera
    assert copy.camera.name == "CAM_SQ020_SH0010"

    shots.move_shot(scene, "SQ020_SH0010", -1)
    assert _names(scene) == ["SQ010_SH0010", "SQ020_SH0010", "SQ010_SH0020"]
    shots.remove_shot(scene, "SQ020_SH0010")
    assert "SQ020_SH0010" not in _names(scene)
    assert scene.timeline_markers.get("SQ020_SH0010") is None
    assert "CAM_SQ020_SH0010" not in bpy.data.objects


@pytest.mark.bpy45
@pytest.mark.parametrize("how", ["remove_from_data", "unlink_like_delete"])
def test_deleted_camera_marks_the_shot_broken_and_nothing_else(scene, how):
    keep = shots.add_shot(scene)
    broken = shots.add_shot(scene)
    camera = broken.camera
    if how == "remove_from_data":
        bpy.data.objects.remove(camera)
    else:  # what the viewport's Delete does: unlinked from the scene, the data may linger
        for collection in list(camera.users_collection):
            collection.objects.unlink(camera)
    problems = handlers.check_scene(scene)
    assert len(problems) == 1 and "camera was deleted" in problems[0]
    assert broken.status == "BROKEN" and "Re-frame" in broken.problem
    assert keep.status == "BLOCKING"
    assert scene.timeline_markers.get(broken.name) is None
    assert scene.timeline_markers.get(keep.name).camera == keep.camera
    with pytest.raises(shots.ShotError, match="camera was deleted"):
        shots.jump_to_shot(scene, broken)
    # Mending it (a new camera) un-breaks it.
    shots.create_camera(scene, broken)
    handlers.check_scene(scene)
    assert broken.status == "BLOCKING" and scene.timeline_markers.get(broken.name) is not None


@pytest.mark.bpy45
def test_duplicate_names_are_refused_or_flagged(scene):
    shots.add_shot(scene)
    with pytest.raises(shots.ShotError, match="already a shot named"):
        shots.add_shot(scene, "SQ010_SH0010")
    second = shots.add_shot(scene)
    second.name = "SQ010_SH0010"  # what a user typing in the list can do
    problems = shots.validate_shots(scene)
    assert any("Two shots are named SQ010_SH0010" in p for p in problems)


@pytest.mark.bpy45
def test_editing_a_shots_range_or_camera_moves_the_cut(scene):
    first = shots.add_shot(scene, duration=24)
    second = shots.add_shot(scene, duration=24)
    second.frame_start = 30
    assert scene.timeline_markers[second.name].frame == 30
    spare = bpy.data.objects.new("Spare camera", bpy.data.cameras.new("Spare camera"))
    scene.collection.objects.link(spare)
    first.camera = spare
    assert scene.timeline_markers[first.name].camera == spare
    scene.frame_set(10)
    assert scene.camera == spare
