# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in rig in real Blender: building, posing, looking, reading joints, saving."""

import math

import bpy
import numpy as np
import pytest
from mathutils import Quaternion, Vector

from standin.addon import framing, mannequin, poses, rig

pytestmark = pytest.mark.bpy45


@pytest.fixture
def ann(scene):
    return rig.create_stand_in(scene, "Ann", height=1.75, color=(0.2, 0.4, 0.9, 1.0), pass_index=3)


def _evaluated_vertices(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        return np.array([evaluated.matrix_world @ v.co for v in mesh.vertices])
    finally:
        evaluated.to_mesh_clear()


def _at(armature, frame):
    bpy.context.scene.frame_set(frame)
    return rig.joint_positions(armature)


def _horizontal(v) -> Vector:
    return Vector((v.x, v.y, 0.0)).normalized()


def _nose_direction(joints) -> Vector:
    eyes = (joints["r_eye"] + joints["l_eye"]) / 2
    ears = (joints["r_ear"] + joints["l_ear"]) / 2
    return _horizontal(joints["nose"] - (eyes + ears) / 2)


# --- building -----------------------------------------------------------------------------


def test_stand_in_is_an_armature_with_a_deforming_body(scene, ann):
    assert ann.name == "SI_Ann" and ann.type == "ARMATURE"
    assert ann["standin_character"] == "Ann" and ann["standin_height"] == pytest.approx(1.75)
    assert rig.is_stand_in(ann)
    skel = mannequin.skeleton(1.75)
    assert sorted(b.name for b in ann.data.bones) == sorted(skel.bone_names)
    assert ann.data.bones["forearm.L"].parent.name == "upper_arm.L"
    body = rig.body_of(ann)
    assert body is not None and body.type == "MESH" and body.parent == ann
    assert not rig.is_stand_in(body) and not rig.is_stand_in(None)
    (modifier,) = [m for m in body.modifiers if m.type == "ARMATURE"]
    assert modifier.object == ann
    assert body.pass_index == 3
    assert ann.name in scene.collection.objects and body.name in scene.collection.objects
    assert all(pb.rotation_mode == "QUATERNION" for pb in ann.pose.bones)


def test_each_body_vertex_in_one_bone_group(ann):
    body = rig.body_of(ann)
    bones = set(ann.data.bones.keys())
    assert {g.name for g in body.vertex_groups} <= bones
    for vertex in body.data.vertices:
        assert len(vertex.groups) == 1
        assert vertex.groups[0].weight == pytest.approx(1.0)
    assert not body.data.validate()  # nothing to fix


def test_colour_on_material_viewport_and_object(ann):
    body = rig.body_of(ann)
    material = body.data.materials[0]
    assert tuple(material.diffuse_color) == pytest.approx((0.2, 0.4, 0.9, 1.0))
    assert tuple(body.color) == pytest.approx((0.2, 0.4, 0.9, 1.0))
    (principled,) = [n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"]
    assert tuple(principled.inputs["Base Color"].default_value) == pytest.approx((0.2, 0.4, 0.9, 1.0))


def test_rest_bone_frames_match_the_pure_maths(ann):
    """poses.py writes local rotations computed from mannequin.rest_matrix: it must be Blender's."""
    for bone in mannequin.skeleton(1.75).bones:
        blender = np.array(ann.data.bones[bone.name].matrix_local.to_3x3())
        assert blender == pytest.approx(mannequin.rest_matrix(bone), abs=1e-5), bone.name
        assert tuple(ann.data.bones[bone.name].head_local) == pytest.approx(bone.head, abs=1e-5)


def test_linked_into_the_given_collection(scene):
    cast = bpy.data.collections.new("Cast")
    scene.collection.children.link(cast)
    bob = rig.create_stand_in(scene, "Bob", collection=cast)
    assert bob.name in cast.objects and rig.body_of(bob).name in cast.objects
    assert bob.name not in scene.collection.objects
    assert len(bob.data.bones) == len(mannequin.skeleton(1.75).bones)


def test_built_in_a_scene_that_is_not_the_current_one(scene):
    other = bpy.data.scenes.new("Other")
    zed = rig.create_stand_in(other, "Zed")
    assert zed.name in other.collection.objects and zed.name not in scene.objects
    assert len(zed.data.bones) == len(mannequin.skeleton(1.75).bones)
    rig.apply_pose(zed, "sit", frame=1)
    assert zed.pose.bones["thigh.L"].rotation_quaternion.angle == pytest.approx(math.radians(90), abs=0.2)


def test_built_while_another_stand_in_is_in_pose_mode(scene, ann):
    bpy.context.view_layer.objects.active = ann
    bpy.ops.object.mode_set(mode="POSE")
    bob = rig.create_stand_in(scene, "Bob")
    assert len(bob.data.bones) == len(ann.data.bones) and bob.mode == "OBJECT"


def test_two_stand_ins_of_the_same_name_get_their_own_objects(scene, ann):
    twin = rig.create_stand_in(scene, "Ann")
    assert twin != ann and rig.body_of(twin) != rig.body_of(ann)
    assert rig.body_of(twin).name.startswith(twin.name)


def test_remove_stand_in_deletes_its_objects(scene, ann):
    body_name = rig.body_of(ann).name
    rig.remove_stand_in(ann)
    assert "SI_Ann" not in bpy.data.objects and body_name not in bpy.data.objects
    assert "SI_Ann" not in bpy.data.armatures


def test_bad_height_is_refused(scene):
    with pytest.raises(ValueError, match="between"):
        rig.create_stand_in(scene, "Giant", height=3.0)


# --- joints -------------------------------------------------------------------------------


def test_standing_joints(scene):
    cleo = rig.create_stand_in(scene, "Cleo", height=1.75, location=(2.0, 3.0, 0.0))
    j = rig.joint_positions(cleo)
    assert set(j) == set(mannequin.COCO18) | {"head_top"}
    assert j["nose"].z > j["neck"].z > j["r_hip"].z > j["r_knee"].z > j["r_ankle"].z
    assert j["nose"].y < 3.0 - 0.05  # the face is to the front: -Y
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert j[f"r_{part}"].x < 2.0 < j[f"l_{part}"].x, part
    assert j["r_ankle"].z == pytest.approx(0.08, abs=0.01) and j["l_ankle"].z == pytest.approx(0.08, abs=0.01)
    assert j["head_top"].z == pytest.approx(1.75, abs=1e-4)
    assert (j["head_top"].x, j["head_top"].y) == pytest.approx((2.0, 3.0), abs=1e-4)


def test_child_and_adult_proportions(scene):
    child = rig.create_stand_in(scene, "Kid", height=1.1)
    adult = rig.create_stand_in(scene, "Dad", height=1.9, location=(1, 0, 0))
    c, a = rig.joint_positions(child), rig.joint_positions(adult)
    assert c["head_top"].z == pytest.approx(1.1, abs=1e-4) and a["head_top"].z == pytest.approx(1.9, abs=1e-4)
    # head (crown to chin ~ twice crown to eyes) as a share of height
    child_head = (c["head_top"].z - c["r_eye"].z) / 1.1
    adult_head = (a["head_top"].z - a["r_eye"].z) / 1.9
    assert child_head > 1.25 * adult_head
    assert c["r_hip"].z / 1.1 < a["r_hip"].z / 1.9


@pytest.mark.parametrize("name", poses.POSE_KEYS)
def test_blender_poses_exactly_as_the_pure_model_says(ann, name):
    """The quaternions are right for the rest bones: Blender's joints = poses.posed_joints."""
    rig.apply_pose(ann, name, frame=1)
    j = _at(ann, 1)
    expected = poses.posed_joints(rig.skeleton_of(ann), poses.pose_keys(name, rig.skeleton_of(ann))[0])
    for joint, position in expected.items():
        assert tuple(j[joint]) == pytest.approx(tuple(position), abs=1e-4), joint


def test_body_deforms_with_the_pose(scene, ann):
    body = rig.body_of(ann)
    forearm = body.vertex_groups["forearm.R"].index
    thigh = body.vertex_groups["thigh.R"].index
    in_forearm = [v.index for v in body.data.vertices if v.groups[0].group == forearm]
    in_thigh = [v.index for v in body.data.vertices if v.groups[0].group == thigh]
    before = _evaluated_vertices(body)
    elbow = ann.pose.bones["forearm.R"]
    elbow.rotation_quaternion = Quaternion((1, 0, 0), math.radians(-90))  # local X: bend the elbow
    bpy.context.view_layer.update()
    after = _evaluated_vertices(body)
    moved = np.linalg.norm(after[in_forearm] - before[in_forearm], axis=1)
    assert moved.max() > 0.15
    assert np.linalg.norm(after[in_thigh] - before[in_thigh], axis=1).max() < 1e-6
    assert after[in_forearm][:, 1].min() < before[in_forearm][:, 1].min() - 0.15  # hand came forward


# --- poses --------------------------------------------------------------------------------


def test_sit_on_a_seat(scene, ann):
    rig.apply_pose(ann, "sit", frame=1, seat_height=0.45)
    j = _at(ann, 1)
    for side in "rl":
        assert 0.45 < j[f"{side}_hip"].z < 0.45 + 0.12
        assert j[f"{side}_knee"].y < j[f"{side}_hip"].y - 0.2  # knees forward
    body = _evaluated_vertices(rig.body_of(ann))
    over_the_seat = body[np.abs(body[:, 1]) < 0.05]  # pelvis and the tops of the thighs
    assert over_the_seat[:, 2].min() == pytest.approx(0.45, abs=0.04)  # the body rests on the seat


def test_sit_on_a_seat_of_a_stand_in_placed_higher(scene):
    ed = rig.create_stand_in(scene, "Ed", height=1.8, location=(0, 0, 1.0), facing_deg=30)
    rig.apply_pose(ed, "sit", seat_height=0.6)
    j = rig.joint_positions(ed)
    assert 1.6 < j["r_hip"].z < 1.72


def test_lie_down_every_joint_low(scene, ann):
    rig.apply_pose(ann, "lie_down", frame=1)
    j = _at(ann, 1)
    assert max(p.z for p in j.values()) < 0.5
    assert min(p.z for p in j.values()) > 0.0


def test_kneel_one_knee_on_the_floor(scene, ann):
    rig.apply_pose(ann, "kneel", frame=1)
    j = _at(ann, 1)
    assert min(j["r_knee"].z, j["l_knee"].z) < 0.12
    assert max(j["r_knee"].z, j["l_knee"].z) > 0.35


def test_point_right_arm_ahead_at_shoulder_height(scene, ann):
    rig.apply_pose(ann, "point", frame=1)
    j = _at(ann, 1)
    assert j["r_wrist"].z == pytest.approx(j["r_shoulder"].z, abs=0.1)
    assert j["r_wrist"].y < j["neck"].y - 0.45


def test_arms_crossed(scene, ann):
    rig.apply_pose(ann, "arms_crossed", frame=1)
    j = _at(ann, 1)
    assert (j["r_wrist"] - j["l_elbow"]).length < 0.15
    assert (j["l_wrist"] - j["r_elbow"]).length < 0.15
    for side in "rl":
        assert j[f"{side}_wrist"].y < j["neck"].y - 0.1  # in front of the chest
        assert j["r_hip"].z < j[f"{side}_wrist"].z < j["neck"].z


def test_walk_is_a_repeating_cycle_with_alternating_feet(scene, ann):
    rig.apply_pose(ann, "walk", frame=10)
    fcurves = rig.pose_fcurves(ann)
    assert fcurves and all(any(m.type == "CYCLES" for m in fc.modifiers) for fc in fcurves)
    frames = sorted({round(k.co.x) for fc in fcurves for k in fc.keyframe_points})
    assert frames == [10, 16, 22, 28, 34]
    length = poses.cycle_length("walk")
    assert length == 24
    first, half = _at(ann, 10), _at(ann, 22)
    assert first["r_ankle"].y < first["l_ankle"].y - 0.3  # right foot in front (-Y)
    assert half["l_ankle"].y < half["r_ankle"].y - 0.3
    for frame in (13, 25, 3):
        here, later = _at(ann, frame), _at(ann, frame + length)
        for joint in ("r_ankle", "l_wrist", "nose", "neck"):
            assert tuple(here[joint]) == pytest.approx(tuple(later[joint]), abs=1e-4), (frame, joint)
    far = _at(ann, 10 + 5 * length)
    assert far["r_ankle"].y == pytest.approx(first["r_ankle"].y, abs=1e-4)


def test_run_cycles_faster_than_walk(scene, ann):
    rig.apply_pose(ann, "run", frame=1)
    frames = sorted({round(k.co.x) for fc in rig.pose_fcurves(ann) for k in fc.keyframe_points})
    assert frames[0] == 1 and frames[-1] - frames[0] == poses.cycle_length("run") < poses.cycle_length("walk")


def test_talk_is_keyed_and_loops(scene, ann):
    rig.apply_pose(ann, "talk", frame=1)
    fcurves = rig.pose_fcurves(ann)
    assert fcurves and all(any(m.type == "CYCLES" for m in fc.modifiers) for fc in fcurves)
    wrist_heights = [_at(ann, f)["r_wrist"].z for f in range(1, 49, 4)]
    assert max(wrist_heights) - min(wrist_heights) > 0.15
    assert _at(ann, 20)["r_wrist"].z == pytest.approx(_at(ann, 20 + 48)["r_wrist"].z, abs=1e-4)


def test_cycle_length_follows_the_scene_frame_rate(scene, ann):
    scene.render.fps = 30
    rig.apply_pose(ann, "walk", frame=1)
    frames = sorted({round(k.co.x) for fc in rig.pose_fcurves(ann) for k in fc.keyframe_points})
    assert frames[-1] - frames[0] == 30


def test_held_poses_key_pose_to_pose_and_replace_at_their_frame(scene, ann):
    rig.apply_pose(ann, "stand", frame=1)
    rig.apply_pose(ann, "sit", frame=40)
    assert _at(ann, 1)["r_hip"].z == pytest.approx(0.897, abs=0.01)
    assert _at(ann, 40)["r_hip"].z < 0.6
    rig.apply_pose(ann, "kneel", frame=40)  # replaces the sit
    assert _at(ann, 40)["r_knee"].z < 0.12
    assert _at(ann, 1)["r_hip"].z == pytest.approx(0.897, abs=0.01)
    frames = sorted({round(k.co.x) for fc in rig.pose_fcurves(ann) for k in fc.keyframe_points})
    assert frames == [1, 40]


def test_held_pose_after_a_cycle_clears_the_cycle(scene, ann):
    rig.apply_pose(ann, "walk", frame=1)
    rig.apply_pose(ann, "sit", frame=5)
    fcurves = rig.pose_fcurves(ann)
    assert not any(m.type == "CYCLES" for fc in fcurves for m in fc.modifiers)
    assert sorted({round(k.co.x) for fc in fcurves for k in fc.keyframe_points}) == [5]
    assert _at(ann, 100)["r_hip"].z < 0.6


def test_pose_at_the_current_frame_by_default(scene, ann):
    scene.frame_set(17)
    rig.apply_pose(ann, "point")
    frames = {round(k.co.x) for fc in rig.pose_fcurves(ann) for k in fc.keyframe_points}
    assert frames == {17}
    assert rig.joint_positions(ann)["r_wrist"].y < -0.45


def test_unknown_pose_is_refused(ann):
    with pytest.raises(ValueError, match="walk"):
        rig.apply_pose(ann, "moonwalk")


# --- looking ------------------------------------------------------------------------------


def test_look_at_follows_the_target(scene, ann):
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    target.location = (3.0, 0.0, 1.6)  # to the character's left (+X)
    rig.look_at(ann, target)
    bpy.context.view_layer.update()
    j = rig.joint_positions(ann)
    to_target = _horizontal(target.location - j["nose"])
    assert _nose_direction(j).dot(to_target) > 0.95
    target.location = (-3.0, -1.0, 1.6)  # now to its right, a little in front
    bpy.context.view_layer.update()
    j = rig.joint_positions(ann)
    assert _nose_direction(j).dot(_horizontal(target.location - j["nose"])) > 0.95
    assert j["neck"].z == pytest.approx(1.4325, abs=0.01)  # the body did not move
    rig.clear_look_at(ann)
    bpy.context.view_layer.update()
    assert _nose_direction(rig.joint_positions(ann)).dot(Vector((0, -1, 0))) > 0.99
    assert not any(c for pb in ann.pose.bones for c in pb.constraints)


def test_look_at_another_stand_in_meets_its_eyes(scene, ann):
    kid = rig.create_stand_in(scene, "Kid", height=1.1, location=(0.0, -2.0, 0.0), facing_deg=180)
    rig.look_at(ann, kid)
    bpy.context.view_layer.update()
    j, k = rig.joint_positions(ann), rig.joint_positions(kid)
    head = ann.pose.bones["head"]
    pivot = ann.matrix_world @ head.head
    kid_eyes = (k["r_eye"] + k["l_eye"]) / 2
    face = (ann.matrix_world.to_3x3() @ head.matrix.to_3x3()) @ Vector((0, 0, 1))
    assert face.dot((kid_eyes - pivot).normalized()) > 0.999
    assert j["nose"].z < 1.6  # looks down at the child


def test_head_target_sits_between_the_eyes_and_moves_with_the_head(scene, ann):
    eyes = rig.head_target(ann)
    assert eyes.type == "EMPTY" and rig.head_target(ann) == eyes  # made once
    assert not rig.is_stand_in(eyes) and rig.body_of(ann) != eyes
    bpy.context.view_layer.update()
    j = rig.joint_positions(ann)
    assert tuple(eyes.matrix_world.translation) == pytest.approx(tuple((j["r_eye"] + j["l_eye"]) / 2), abs=1e-4)
    rig.apply_pose(ann, "kneel", frame=1)
    j = _at(ann, 1)
    assert tuple(eyes.matrix_world.translation) == pytest.approx(tuple((j["r_eye"] + j["l_eye"]) / 2), abs=1e-4)
    bob = rig.create_stand_in(scene, "Bob", location=(3.0, 0.0, 0.0))
    rig.look_at(bob, eyes)
    bpy.context.view_layer.update()
    b = rig.joint_positions(bob)
    assert _nose_direction(b).dot(_horizontal(eyes.matrix_world.translation - b["nose"])) > 0.95
    rig.remove_stand_in(ann)
    assert "SI_Ann_eyes" not in bpy.data.objects


def test_look_at_with_partial_influence(scene, ann):
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    target.location = (3.0, 0.0, 1.6)
    rig.look_at(ann, target, influence=0.0)
    bpy.context.view_layer.update()
    assert _nose_direction(rig.joint_positions(ann)).dot(Vector((0, -1, 0))) > 0.99
    rig.look_at(ann, target, influence=1.0)  # retargets, no second constraint
    assert len(ann.pose.bones["head"].constraints) == 1


# --- framing subject ----------------------------------------------------------------------


def test_subject_of_a_standing_stand_in(scene):
    dee = rig.create_stand_in(scene, "Dee", height=1.6, location=(1.0, 2.0, 0.5))
    subject = rig.subject_from_stand_in(dee)
    assert isinstance(subject, framing.Subject)
    assert subject.name == "Dee" and subject.height == pytest.approx(1.6)
    assert subject.head_top == pytest.approx((1.0, 2.0, 2.1), abs=1e-4)
    assert subject.feet == pytest.approx((1.0, 2.0, 0.5), abs=1e-3)
    assert subject.facing == pytest.approx((0.0, -1.0, 0.0), abs=1e-4)
    assert subject.neck[2] < subject.eyes[2] < subject.head_top[2]
    assert subject.eyes[1] < 2.0  # the eyes are at the front of the head
    assert subject.right_shoulder[0] < 1.0 < subject.left_shoulder[0]
    assert all(isinstance(c, float) for c in subject.eyes + subject.feet + subject.facing)


def test_rotated_stand_in_reports_a_rotated_facing(scene):
    eve = rig.create_stand_in(scene, "Eve", facing_deg=90)
    subject = rig.subject_from_stand_in(eve)
    assert subject.facing == pytest.approx((1.0, 0.0, 0.0), abs=1e-4)  # -Y turned 90° about Z
    assert subject.right_shoulder[1] < 0 < subject.left_shoulder[1]
    eve.rotation_euler.z = math.radians(-135)
    bpy.context.view_layer.update()
    facing = rig.subject_from_stand_in(eve).facing
    assert facing == pytest.approx((-math.sqrt(0.5), math.sqrt(0.5), 0.0), abs=1e-4)


def test_subject_facing_follows_the_body_and_stays_horizontal(scene, ann):
    for name in ("walk", "sit", "kneel", "lie_down", "point"):
        rig.apply_pose(ann, name, frame=1)
        subject = rig.subject_from_stand_in(ann)
        assert subject.facing[2] == pytest.approx(0.0)
        assert Vector(subject.facing).length == pytest.approx(1.0)
        assert subject.facing[1] < -0.9, name
        assert subject.feet[2] == pytest.approx(0.0, abs=0.02), name


# --- files --------------------------------------------------------------------------------


def test_rig_survives_save_and_reload(scene, ann, tmp_path):
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    target.location = (3.0, -1.0, 1.6)
    rig.apply_pose(ann, "walk", frame=1)
    rig.look_at(ann, target)
    scene.frame_set(7)
    before = {k: tuple(v) for k, v in rig.joint_positions(ann).items()}
    path = str(tmp_path / "rig.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    loaded = bpy.data.objects["SI_Ann"]
    assert rig.is_stand_in(loaded) and loaded["standin_height"] == pytest.approx(1.75)
    body = rig.body_of(loaded)
    assert body is not None and body.pass_index == 3
    assert tuple(body.data.materials[0].diffuse_color) == pytest.approx((0.2, 0.4, 0.9, 1.0))
    bpy.context.scene.frame_set(7)
    after = rig.joint_positions(loaded)
    for joint, position in before.items():
        assert tuple(after[joint]) == pytest.approx(position, abs=1e-4), joint
    assert tuple(_at(loaded, 7 + 24)["r_ankle"]) == pytest.approx(before["r_ankle"], abs=1e-4)
    rig.apply_pose(loaded, "sit", frame=1)  # still posable after loading
    assert _at(loaded, 1)["r_hip"].z < 0.6
