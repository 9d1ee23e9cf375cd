# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure stand-in data: skeleton, body mesh and pose library (no Blender needed)."""

import collections

import numpy as np
import pytest

import mesh_topology
from standin.addon import mannequin, poses

ADULT = 1.75


@pytest.fixture(scope="module")
def adult():
    return mannequin.skeleton(ADULT)


def _joints(skel, pose="stand", seat_height=None):
    return poses.posed_joints(skel, poses.pose_keys(pose, skel, seat_height)[0])


# --- skeleton -------------------------------------------------------------------------------


def test_coco18_names_in_openpose_order():
    assert mannequin.COCO18 == (
        "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
        "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
    )


def test_every_coco_joint_is_a_real_bone_end(adult):
    names = set(adult.bone_names)
    assert tuple(adult.joints) == mannequin.COCO18
    for joint, (bone, end) in adult.joints.items():
        assert bone in names, joint
        assert end in ("head", "tail"), joint
    assert adult.head_top[0] in names and adult.head_top[1] in ("head", "tail")


def test_bones_come_after_their_parents_and_one_root(adult):
    seen = set()
    roots = [b.name for b in adult.bones if b.parent is None]
    assert roots == ["pelvis"] == [adult.root]
    for bone in adult.bones:
        assert bone.parent is None or bone.parent in seen, bone.name
        assert bone.length > 0.005, bone.name
        seen.add(bone.name)


def test_left_and_right_bones_mirror_across_x(adult):
    for bone in adult.bones:
        if bone.name.endswith(".L"):
            twin = adult.bone(bone.name[:-2] + ".R")
            assert twin.head == pytest.approx((-bone.head[0], *bone.head[1:]))
            assert twin.tail == pytest.approx((-bone.tail[0], *bone.tail[1:]))
            assert (twin.parent or "").replace(".R", ".L") == (bone.parent or "")
        else:
            assert bone.name.endswith(".R") or abs(bone.head[0]) < 1e-9 and abs(bone.tail[0]) < 1e-9, bone.name


def test_standing_joints_where_a_person_has_them(adult):
    j = adult.rest_joints()
    assert j["nose"][2] > j["neck"][2] > j["r_hip"][2] > j["r_knee"][2] > j["r_ankle"][2]
    assert j["nose"][1] < -0.05  # the face is to the front, -Y
    # the subject's own right is -X when it faces -Y
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert j[f"r_{part}"][0] < -0.02 < 0.02 < j[f"l_{part}"][0], part
    assert j["r_ankle"][2] == pytest.approx(0.08, abs=0.01)
    assert j["head_top"][2] == pytest.approx(ADULT)
    assert j["neck"][2] == pytest.approx((j["r_shoulder"][2] + j["l_shoulder"][2]) / 2, abs=0.04)
    assert j["r_eye"][2] > j["nose"][2] and j["r_wrist"][2] == pytest.approx(0.48 * ADULT, abs=0.06)
    assert np.linalg.norm(np.subtract(j["r_shoulder"], j["l_shoulder"])) == pytest.approx(0.36, abs=0.06)


@pytest.mark.parametrize("height", [0.9, 1.1, 1.5, 1.9, 2.2])
def test_skeleton_scales_with_height(height):
    skel = mannequin.skeleton(height)
    j = skel.rest_joints()
    assert j["head_top"][2] == pytest.approx(height)
    assert j["r_ankle"][2] == pytest.approx(0.045 * height)
    assert skel.height == height


def test_child_has_a_bigger_head_and_shorter_legs_than_an_adult():
    child, adult = mannequin.skeleton(1.1), mannequin.skeleton(1.9)
    assert child.proportions.heads_tall == pytest.approx(5.5, abs=0.3)
    assert adult.proportions.heads_tall == pytest.approx(7.5, abs=0.3)
    assert child.proportions.head_length / 1.1 > 1.25 * adult.proportions.head_length / 1.9
    assert child.proportions.hip_z / 1.1 < adult.proportions.hip_z / 1.9
    assert mannequin.heads_tall(0.9) < mannequin.heads_tall(1.3) < mannequin.heads_tall(1.7) < mannequin.heads_tall(2.2)


@pytest.mark.parametrize("height", [0.5, 0.89, 2.21, 3.0])
def test_height_outside_the_range_is_refused_with_a_sentence(height):
    with pytest.raises(ValueError, match=r"between 0\.9 m and 2\.2 m"):
        mannequin.skeleton(height)


def test_rest_matrix_is_blenders_bone_frame():
    up = mannequin.vec_roll_to_matrix((0, 0, 1))
    assert up == pytest.approx(np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), abs=1e-9)  # X, Y=up, Z=front
    front = mannequin.vec_roll_to_matrix((0, -1, 0))
    assert front == pytest.approx(np.diag([-1.0, -1.0, 1.0]))
    rolled = mannequin.vec_roll_to_matrix((0, 0, 1), np.pi / 2)
    assert rolled[:, 1] == pytest.approx([0, 0, 1])
    for direction in [(1, 2, 3), (0.001, -1, 0.002), (-1, 0, 0), (0, -0.999, 0.04)]:
        m = mannequin.vec_roll_to_matrix(direction, 0.3)
        assert m.T @ m == pytest.approx(np.eye(3), abs=1e-5)  # Blender approximates near -Y too
        assert np.linalg.det(m) == pytest.approx(1.0, abs=1e-5)
        assert m[:, 1] == pytest.approx(np.asarray(direction) / np.linalg.norm(direction))


# --- body mesh ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body(adult):
    return mannequin.body_mesh(adult)


def _pieces(body):
    """Vertex-index sets of the connected pieces of the mesh."""
    return mesh_topology.shell_vertices(body.verts, body.faces)


def test_body_has_a_segment_per_body_part(body, adult):
    expected = {"head", "neck", "chest", "pelvis"} | {
        f"{part}.{side}" for part in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot") for side in "LR"}
    assert expected <= set(body.groups)
    assert set(body.groups) <= set(adult.bone_names)


def test_every_vertex_in_exactly_one_group_and_each_piece_in_one_group(body):
    owners = collections.Counter(v for indices in body.groups.values() for v in indices)
    assert sorted(owners) == list(range(len(body.verts)))
    assert set(owners.values()) == {1}
    group_of = {v: name for name, indices in body.groups.items() for v in indices}
    for piece in _pieces(body):
        assert len({group_of[v] for v in piece}) == 1
    assert len(_pieces(body)) == len(body.groups)


def test_every_piece_is_closed_and_manifold(body):
    edges = collections.Counter()
    directed = collections.Counter()
    for face in body.faces:
        assert len(set(face)) == len(face) >= 3
        for a, b in zip(face, face[1:] + face[:1]):
            edges[frozenset((a, b))] += 1
            directed[(a, b)] += 1
    assert set(edges.values()) == {2}
    assert set(directed.values()) == {1}  # consistent winding: each edge used once each way


def test_normals_point_outward(body):
    points = np.array(body.verts)
    for piece in _pieces(body):
        faces = [f for f in body.faces if f[0] in piece]
        center = points[sorted(piece)].mean(axis=0)
        volume = 0.0
        for face in faces:
            a = points[face[0]] - center
            for i in range(1, len(face) - 1):
                volume += np.dot(a, np.cross(points[face[i]] - center, points[face[i + 1]] - center)) / 6
        assert volume > 0


def test_body_stands_on_the_floor_and_is_as_tall_as_the_skeleton(body):
    points = np.array(body.verts)
    assert points[:, 2].min() == pytest.approx(0.0, abs=1e-6)
    assert points[:, 2].max() == pytest.approx(ADULT, abs=1e-6)
    assert points[:, 0].max() == pytest.approx(-points[:, 0].min())  # symmetric
    nose = points[body.groups["nose"]]
    assert nose[:, 1].min() < points[body.groups["head"]][:, 1].min()  # the nose shows the front


def test_each_segment_surrounds_its_bone(body, adult):
    points = np.array(body.verts)
    for name, indices in body.groups.items():
        bone = adult.bone(name)
        middle = (np.array(bone.head) + np.array(bone.tail)) / 2
        lo, hi = points[indices].min(axis=0), points[indices].max(axis=0)
        assert np.all(lo - 0.02 <= middle) and np.all(middle <= hi + 0.02), name


# --- poses ----------------------------------------------------------------------------------


def test_pose_library_keys_and_entries_shaped_like_enum_items():
    assert poses.POSE_KEYS == ("stand", "walk", "run", "sit", "point", "arms_crossed", "kneel", "lie_down", "talk")
    for key, label, description in poses.POSES:
        assert key and label and description


def test_unknown_pose_lists_the_valid_ones(adult):
    with pytest.raises(ValueError, match="moonwalk.*stand, walk, run, sit, point, arms_crossed, kneel, lie_down, talk"):
        poses.pose_keys("moonwalk", adult)


@pytest.mark.parametrize("name", poses.POSE_KEYS)
def test_every_key_rotates_every_bone_with_unit_quaternions(name, adult):
    keys = poses.pose_keys(name, adult)
    assert keys
    for key in keys:
        assert set(key.rotations) == set(adult.bone_names)
        for q in key.rotations.values():
            assert len(q) == 4 and np.linalg.norm(q) == pytest.approx(1.0) and q[0] >= 0
        assert len(key.root_location) == 3


def test_stand_is_the_rest_pose(adult):
    (key,) = poses.pose_keys("stand", adult)
    assert not key.cyclic and key.frame_offset == 0
    assert all(q == pytest.approx((1, 0, 0, 0)) for q in key.rotations.values())
    assert key.root_location == pytest.approx((0, 0, 0))


@pytest.mark.parametrize("name, length", [("walk", 24), ("run", 16), ("talk", 48)])
def test_cycles_loop_back_to_their_first_key(name, length, adult):
    keys = poses.pose_keys(name, adult)
    assert all(k.cyclic for k in keys) and len(keys) >= 3
    assert keys[0].frame_offset == 0 and keys[-1].frame_offset == length == poses.cycle_length(name)
    assert [k.frame_offset for k in keys] == sorted({k.frame_offset for k in keys})
    assert keys[-1].rotations == keys[0].rotations and keys[-1].root_location == keys[0].root_location
    assert any(keys[1].rotations[b] != keys[0].rotations[b] for b in adult.bone_names)


def test_cycles_are_timed_in_seconds_whatever_the_frame_rate(adult):
    assert poses.cycle_length("walk", fps=25) == 25
    assert poses.pose_keys("walk", adult, fps=30)[-1].frame_offset == 30
    assert poses.cycle_length("sit") == 0
    assert poses.cycle_length("run") < poses.cycle_length("walk")


def test_walk_swaps_the_front_foot_and_keeps_one_foot_down(adult):
    keys = poses.pose_keys("walk", adult)
    half = len(keys) // 2
    first, second = poses.posed_joints(adult, keys[0]), poses.posed_joints(adult, keys[half])
    assert first["r_ankle"][1] < first["l_ankle"][1] - 0.3  # right foot in front (-Y)
    assert second["l_ankle"][1] < second["r_ankle"][1] - 0.3
    for key in keys:
        j = poses.posed_joints(adult, key)
        assert min(j["r_ankle"][2], j["l_ankle"][2]) == pytest.approx(0.08, abs=0.01)
    # arms swing against the legs
    assert first["l_wrist"][1] < first["r_wrist"][1]


@pytest.mark.parametrize("height", [1.1, 1.75, 2.0])
@pytest.mark.parametrize("seat", [None, 0.45, 0.6])
def test_sit_rests_the_hips_on_the_seat_with_knees_forward(height, seat):
    skel = mannequin.skeleton(height)
    j = _joints(skel, "sit", seat)
    seat_z = 0.45 if seat is None else seat
    for side in "rl":
        assert seat_z < j[f"{side}_hip"][2] < seat_z + 0.12
        assert j[f"{side}_knee"][1] < j[f"{side}_hip"][1] - 0.15
        assert j[f"{side}_ankle"][2] >= 0.04 * height
    assert j["neck"][2] > j["r_hip"][2] + 0.25 * height  # sitting up


def test_sit_on_a_low_seat_puts_the_feet_on_the_floor(adult):
    j = _joints(adult, "sit", 0.3)
    assert j["r_ankle"][2] == pytest.approx(adult.proportions.ankle_z, abs=0.005)


@pytest.mark.parametrize("seat", [-0.1, 3.0])
def test_impossible_seat_is_refused(seat, adult):
    with pytest.raises(ValueError, match="seat"):
        poses.pose_keys("sit", adult, seat_height=seat)


def test_lie_down_keeps_every_joint_low(adult):
    j = _joints(adult, "lie_down")
    assert max(p[2] for p in j.values()) < 0.5
    assert min(p[2] for p in j.values()) > 0.0


def test_kneel_puts_one_knee_on_the_floor(adult):
    j = _joints(adult, "kneel")
    assert j["r_knee"][2] < 0.12
    assert j["l_knee"][2] > 0.35
    assert j["l_ankle"][2] == pytest.approx(adult.proportions.ankle_z, abs=0.01)


def test_point_raises_the_right_arm_straight_ahead(adult):
    j = _joints(adult, "point")
    assert j["r_wrist"][2] == pytest.approx(j["r_shoulder"][2], abs=0.1)
    assert j["r_wrist"][1] < -0.45
    assert j["l_wrist"][2] < j["l_elbow"][2]


def test_arms_crossed_wrists_by_the_opposite_elbows_in_front_of_the_chest(adult):
    j = _joints(adult, "arms_crossed")
    assert np.linalg.norm(j["r_wrist"] - j["l_elbow"]) < 0.15
    assert np.linalg.norm(j["l_wrist"] - j["r_elbow"]) < 0.15
    for side in "rl":
        assert j[f"{side}_wrist"][1] < -0.1
        assert j["r_hip"][2] < j[f"{side}_wrist"][2] < j["neck"][2]
    assert j["r_wrist"][0] > 0 > j["l_wrist"][0]  # crossed over


def test_talk_gestures_with_the_hands(adult):
    keys = poses.pose_keys("talk", adult)
    heights = [poses.posed_joints(adult, k)["r_wrist"][2] for k in keys]
    assert max(heights) - min(heights) > 0.15


def test_quaternion_helpers_round_trip():
    rotation = poses.rx(30) @ poses.rz(-50) @ poses.ry(10)
    q = poses.matrix_to_quaternion(rotation)
    assert poses.quaternion_to_matrix(q) == pytest.approx(rotation)
    assert poses.rotation_between((0, 0, -1), (0, -1, 0)) @ np.array([0, 0, -1]) == pytest.approx([0, -1, 0])
    assert poses.rotation_between((1, 0, 0), (-1, 0, 0)) @ np.array([1, 0, 0]) == pytest.approx([-1, 0, 0])
    assert poses.rx(90) @ np.array([0, 0, -1.0]) == pytest.approx([0, 1, 0])  # hanging limb tips back
