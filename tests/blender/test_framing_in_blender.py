"""The Blender-free framing maths, checked against Blender's own camera projection."""

import bpy
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from standin.addon import framing, rig, shots


def _select_only(*objects):
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = objects[-1]


def _projected(scene, camera, point):
    bpy.context.view_layer.update()
    return tuple(world_to_camera_view(scene, camera, Vector(point)))


@pytest.mark.bpy45
@pytest.mark.parametrize("aspect", ["2.39", "9:16"])
@pytest.mark.parametrize("size", [s.key for s in framing.SHOT_SIZES])
def test_new_shot_lands_head_and_feet_in_the_band_blender_sees(scene, size, aspect):
    scene.standin.project.aspect = aspect
    bpy.ops.standin.character_add(name="Ada", height=1.7, facing=0.6)
    ada = scene.standin.cast["Ada"].stand_in
    _select_only(ada)
    assert bpy.ops.standin.shot_add(shot_size=size, lens=50.0) == {"FINISHED"}
    shot = scene.standin.active_shot
    assert scene.camera == shot.camera and shot.camera.data.lens == pytest.approx(50.0)
    subject = rig.subject_from_stand_in(ada)
    band = framing.SIZE_BANDS[size]
    placement = framing.CameraPlacement(
        matrix_world=tuple(map(tuple, shot.camera.matrix_world)), lens_mm=shot.camera.data.lens,
        sensor_width_mm=shot.camera.data.sensor_width, aspect=scene.render.resolution_x / scene.render.resolution_y,
        shift_x=shot.camera.data.shift_x, shift_y=shot.camera.data.shift_y,
    )
    for name in ("head_top", "eyes", "feet"):
        point = getattr(subject, name)
        blender_xyz = _projected(scene, shot.camera, point)
        ours = framing.project(point, placement)
        assert blender_xyz[:2] == pytest.approx(ours[:2], abs=1e-4), name
        assert blender_xyz[2] == pytest.approx(ours[2], rel=1e-4, abs=1e-4), name
    assert framing.bands_met(subject, placement, size) == [], band


@pytest.mark.bpy45
def test_two_shot_and_over_the_shoulder_need_two_stand_ins(scene):
    bpy.ops.standin.character_add(name="A")
    a = scene.standin.cast["A"].stand_in
    _select_only(a)
    with pytest.raises(RuntimeError, match="needs two stand-ins"):
        bpy.ops.standin.shot_add(variant="TWO_SHOT")
    scene.cursor.location = (0, -2.0, 0)
    bpy.ops.standin.character_add(name="B", facing=3.14159)
    b = scene.standin.cast["B"].stand_in
    _select_only(a, b)  # B active: B is framed over A's shoulder
    assert bpy.ops.standin.shot_add(variant="OTS", shot_size="MCU", lens=50.0) == {"FINISHED"}
    shot = scene.standin.active_shot
    assert [s.name for s in shot.subjects] == ["A", "B"]
    eyes_b = _projected(scene, shot.camera, rig.subject_from_stand_in(b).eyes)
    shoulder_a = rig.subject_from_stand_in(a)
    near = min((_projected(scene, shot.camera, p) for p in (shoulder_a.left_shoulder, shoulder_a.right_shoulder)),
               key=lambda xyz: xyz[2])
    assert 0.0 < eyes_b[0] < 1.0 and 0.55 < eyes_b[1] < 0.8
    assert near[2] < eyes_b[2]  # the shoulder is nearer the camera than B


@pytest.mark.bpy45
def test_dolly_in_is_keyed_over_the_shot_and_plays_back(scene):
    bpy.ops.standin.character_add(name="Ada")
    ada = scene.standin.cast["Ada"].stand_in
    _select_only(ada)
    bpy.ops.standin.shot_add(shot_size="CU", lens=50.0, move="DOLLY_IN", move_amount=0.5, duration=25)
    shot = scene.standin.active_shot
    eyes = Vector(rig.subject_from_stand_in(ada).eyes)
    distances = []
    for frame in (shot.frame_start, (shot.frame_start + shot.frame_end) // 2, shot.frame_end):
        scene.frame_set(frame)
        distances.append((shot.camera.matrix_world.translation - eyes).length)
    assert distances[0] - distances[2] == pytest.approx(0.5, abs=0.02)
    assert distances[0] > distances[1] > distances[2]
    # Eased: the middle of the move is half way, the first frames move less than the middle ones.
    assert distances[0] - distances[1] == pytest.approx(0.25, abs=0.03)


@pytest.mark.bpy45
def test_reframe_after_changing_the_size_and_recovering_a_deleted_camera(scene):
    bpy.ops.standin.character_add(name="Ada")
    ada = scene.standin.cast["Ada"].stand_in
    _select_only(ada)
    bpy.ops.standin.shot_add(shot_size="FS", lens=35.0)
    shot = scene.standin.active_shot
    before = (shot.camera.matrix_world.translation - ada.matrix_world.translation).length
    shot.shot_size = "CU"
    assert bpy.ops.standin.shot_reframe() == {"FINISHED"}
    after = (shot.camera.matrix_world.translation - ada.matrix_world.translation).length
    assert after < before / 2
    bpy.data.objects.remove(shot.camera)
    shots.validate_shots(scene)
    assert shot.status == "BROKEN"
    assert bpy.ops.standin.shot_reframe() == {"FINISHED"}
    assert shot.camera is not None and shot.status != "BROKEN"
    assert scene.timeline_markers[shot.name].camera == shot.camera
