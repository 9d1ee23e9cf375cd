# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in pose library: keyed bone rotations for stand, walk, sit, point, ... Pure Python.

A pose is a list of ``PoseKey``: one for a held pose, several for a cycle (walk, run, talk),
whose last key repeats the first so the cycle loops seamlessly (its length is the last key's
``frame_offset``). Every key gives a rotation for EVERY bone of the skeleton, so applying a
pose replaces whatever pose was there.

Rotations are quaternions (w, x, y, z) in each bone's local pose space, ready for
``PoseBone.rotation_quaternion``; ``root_location`` is the pelvis bone's ``PoseBone.location``
(also bone-local). Poses are authored as rotations about the armature's axes (X to the
character's left, -Y forward, Z up), each relative to its parent bone, and converted to the
local frames of the rest bones that ``mannequin`` builds, so they fit any stand-in height.
"""

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from . import mannequin

Quaternion = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]

#: Frame rate the cycles are timed for; other rates stretch the key offsets to the same seconds.
BASE_FPS = 24.0
DEFAULT_SEAT_HEIGHT = 0.45


class PoseInfo(NamedTuple):
    """A library entry, shaped like an EnumProperty item: (key, label, description)."""

    key: str
    label: str
    description: str


POSES = (
    PoseInfo("stand", "Stand", "Standing relaxed, arms at the sides (the rest pose)"),
    PoseInfo("walk", "Walk", "Walk cycle in place, one second per stride at 24 fps (move the stand-in to travel)"),
    PoseInfo("run", "Run", "Run cycle in place, two thirds of a second per stride"),
    PoseInfo("sit", "Sit", "Sitting upright, hands on the thighs; the hips rest on the seat height"),
    PoseInfo("point", "Point", "Pointing straight ahead with the right arm"),
    PoseInfo("arms_crossed", "Arms crossed", "Standing with the arms folded across the chest"),
    PoseInfo("kneel", "Kneel", "On the right knee, left foot planted forward"),
    PoseInfo("lie_down", "Lie down", "Lying on the back, head away from the front"),
    PoseInfo("talk", "Talk", "Talking with hand gestures and head nods, a two-second loop"),
)
POSE_KEYS = tuple(pose.key for pose in POSES)

#: Cycle lengths in frames at BASE_FPS.
CYCLE_FRAMES = {"walk": 24, "run": 16, "talk": 48}


@dataclass(frozen=True)
class PoseKey:
    """One key of a pose: bone name -> local quaternion, the pelvis offset, and whether it loops."""

    frame_offset: int
    rotations: dict[str, Quaternion]
    root_location: Vec3
    cyclic: bool = False


# --- rotation helpers (3x3 matrices, armature axes) --------------------------------------------


def _axis_rotation(axis: int, degrees: float) -> np.ndarray:
    unit = np.zeros(3)
    unit[axis] = 1.0
    return mannequin._axis_angle_matrix(unit, np.radians(degrees))


def rx(degrees: float) -> np.ndarray:
    """About X (the character's left). Positive tips a hanging limb back, a torso forward."""
    return _axis_rotation(0, degrees)


def ry(degrees: float) -> np.ndarray:
    """About Y (the character's back). Positive tips an upright bone towards the character's left."""
    return _axis_rotation(1, degrees)


def rz(degrees: float) -> np.ndarray:
    """About Z (up). Positive turns the character towards its left."""
    return _axis_rotation(2, degrees)


def rotation_between(a, b) -> np.ndarray:
    """The shortest rotation taking direction ``a`` onto direction ``b``."""
    a = np.asarray(a, dtype=float) / np.linalg.norm(a)
    b = np.asarray(b, dtype=float) / np.linalg.norm(b)
    axis = np.cross(a, b)
    sine, cosine = np.linalg.norm(axis), float(np.clip(np.dot(a, b), -1.0, 1.0))
    if sine < 1e-9:
        if cosine > 0:
            return np.eye(3)
        other = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
        axis = np.cross(a, other)
        return mannequin._axis_angle_matrix(axis / np.linalg.norm(axis), np.pi)
    return mannequin._axis_angle_matrix(axis / sine, np.arctan2(sine, cosine))


def matrix_to_quaternion(matrix: np.ndarray) -> Quaternion:
    """(w, x, y, z) of a rotation matrix, with w >= 0 so keys interpolate the short way."""
    m = np.asarray(matrix, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.zeros(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return tuple(float(c) for c in q)


def quaternion_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# --- forward kinematics --------------------------------------------------------------------


@dataclass(frozen=True)
class PosedBone:
    """A bone after posing, in armature space: its ends and its turn away from rest."""

    head: np.ndarray
    tail: np.ndarray
    rotation: np.ndarray  # armature-space rotation from the rest orientation (3x3)


def _forward(skel: mannequin.Skeleton, relative: dict[str, np.ndarray], root_offset) -> dict[str, PosedBone]:
    """Pose the skeleton from rotations relative to each parent, in armature axes."""
    posed: dict[str, PosedBone] = {}
    for bone in skel.bones:
        rest_head, rest_tail = np.array(bone.head), np.array(bone.tail)
        turn = relative.get(bone.name, np.eye(3))
        if bone.parent is None:
            rotation = turn
            head = rest_head + np.asarray(root_offset, dtype=float)
        else:
            parent = posed[bone.parent]
            rotation = parent.rotation @ turn
            head = parent.head + parent.rotation @ (rest_head - np.array(skel.bone(bone.parent).head))
        posed[bone.name] = PosedBone(head, head + rotation @ (rest_tail - rest_head), rotation)
    return posed


def posed_bones(skel: mannequin.Skeleton, key: PoseKey) -> dict[str, PosedBone]:
    """Where every bone of ``skel`` lies (armature space) when posed by ``key``."""
    relative = {}
    for bone in skel.bones:
        rest = mannequin.rest_matrix(bone)
        local = quaternion_to_matrix(key.rotations.get(bone.name, (1.0, 0.0, 0.0, 0.0)))
        relative[bone.name] = rest @ local @ rest.T
    root_rest = mannequin.rest_matrix(skel.bone(skel.root))
    return _forward(skel, relative, root_rest @ np.asarray(key.root_location, dtype=float))


def posed_joints(skel: mannequin.Skeleton, key: PoseKey) -> dict[str, np.ndarray]:
    """Armature-space positions of the 18 COCO joints and ``head_top`` under ``key``."""
    posed = posed_bones(skel, key)
    ends = dict(skel.joints, head_top=skel.head_top)
    return {name: (posed[bone].head if end == "head" else posed[bone].tail).copy()
            for name, (bone, end) in ends.items()}


class _PoseBuilder:
    """Authoring aid: rotations relative to the parent bone, about the armature's axes."""

    def __init__(self, skel: mannequin.Skeleton):
        self.skel = skel
        self.relative: dict[str, np.ndarray] = {}
        self.root_offset = np.zeros(3)

    def turn(self, bone: str, rotation: np.ndarray) -> "_PoseBuilder":
        """Add a rotation (armature axes, relative to the parent) on top of what the bone has."""
        self.relative[bone] = rotation @ self.relative.get(bone, np.eye(3))
        return self

    def posed(self) -> dict[str, PosedBone]:
        return _forward(self.skel, self.relative, self.root_offset)

    def _parent_rotation(self, bone: str) -> np.ndarray:
        parent = self.skel.bone(bone).parent
        return np.eye(3) if parent is None else self.posed()[parent].rotation

    def aim(self, bone: str, direction) -> "_PoseBuilder":
        """Point the bone (head to tail) along an armature-space direction, by the shortest turn."""
        rest = self.skel.bone(bone)
        rest_direction = np.subtract(rest.tail, rest.head)
        local_target = self._parent_rotation(bone).T @ np.asarray(direction, dtype=float)
        self.relative[bone] = rotation_between(rest_direction, local_target)
        return self

    def aim_at(self, bone: str, point) -> "_PoseBuilder":
        """Point the bone from its posed head towards an armature-space point."""
        return self.aim(bone, np.asarray(point, dtype=float) - self.posed()[bone].head)

    def level(self, bone: str) -> "_PoseBuilder":
        """Give the bone its rest orientation in armature space whatever its parents do (feet flat)."""
        self.relative[bone] = self._parent_rotation(bone).T
        return self

    def joints(self) -> dict[str, np.ndarray]:
        posed = self.posed()
        return {name: posed[bone].head if end == "head" else posed[bone].tail
                for name, (bone, end) in self.skel.joints.items()}

    def plant_feet(self, lift: float = 0.0) -> "_PoseBuilder":
        """Move the pelvis up or down so the lower ankle is at its rest height (plus ``lift``)."""
        self.root_offset[2] = 0.0
        joints = self.joints()
        lowest = min(joints["r_ankle"][2], joints["l_ankle"][2])
        self.root_offset[2] = self.skel.proportions.ankle_z - lowest + lift
        return self

    def key(self, frame_offset: int = 0, cyclic: bool = False) -> PoseKey:
        rotations = {}
        for bone in self.skel.bones:
            rest = mannequin.rest_matrix(bone)
            rotations[bone.name] = matrix_to_quaternion(rest.T @ self.relative.get(bone.name, np.eye(3)) @ rest)
        root_rest = mannequin.rest_matrix(self.skel.bone(self.skel.root))
        root_location = tuple(float(c) for c in root_rest.T @ self.root_offset)
        return PoseKey(frame_offset, rotations, root_location, cyclic)


def _sides(lead: str) -> tuple[str, str, float]:
    """(lead side, other side, sign) with sign +1 when the right side leads."""
    return (lead, "L" if lead == "R" else "R", 1.0 if lead == "R" else -1.0)


# --- the poses -----------------------------------------------------------------------------


def _stand(skel, seat_height) -> list[_PoseBuilder]:
    return [_PoseBuilder(skel)]


def _stride_contact(skel, lead: str, run: bool) -> _PoseBuilder:
    """Lead foot striking the ground in front, the other pushing off behind."""
    lead, other, sign = _sides(lead)
    b = _PoseBuilder(skel)
    forward, back = (40.0, 32.0) if run else (25.0, 18.0)
    b.turn(f"thigh.{lead}", rx(-forward)).turn(f"shin.{lead}", rx(20.0 if run else 5.0))
    b.turn(f"foot.{lead}", rx(forward - (20.0 if run else 5.0) - 10.0))  # toes up for the heel strike
    b.turn(f"thigh.{other}", rx(back)).turn(f"shin.{other}", rx(45.0 if run else 12.0))
    b.turn(f"foot.{other}", rx(-(back + (45.0 if run else 12.0)) + 20.0))  # toes down, pushing off
    swing, bend = (40.0, 85.0) if run else (18.0, 15.0)
    b.turn(f"upper_arm.{other}", rx(-swing)).turn(f"forearm.{other}", rx(-bend - 10.0))
    b.turn(f"upper_arm.{lead}", rx(swing)).turn(f"forearm.{lead}", rx(-bend))
    b.turn("pelvis", rz(sign * 5.0)).turn("chest", rz(-sign * 10.0))
    if run:
        b.turn("chest", rx(10.0)).turn("neck", rx(-8.0))
    return b.plant_feet()


def _stride_passing(skel, lead: str, run: bool) -> _PoseBuilder:
    """Lead leg under the body carrying the weight, the other swinging through."""
    lead, other, _ = _sides(lead)
    b = _PoseBuilder(skel)
    support_knee = 30.0 if run else 5.0
    b.turn(f"thigh.{lead}", rx(5.0 if run else 0.0)).turn(f"shin.{lead}", rx(support_knee))
    b.level(f"foot.{lead}")
    swing_thigh, swing_knee = (-45.0, 100.0) if run else (-12.0, 45.0)
    b.turn(f"thigh.{other}", rx(swing_thigh)).turn(f"shin.{other}", rx(swing_knee))
    b.turn(f"foot.{other}", rx(-(swing_thigh + swing_knee) + 5.0))
    bend = 85.0 if run else 15.0
    for side in (lead, other):
        b.turn(f"forearm.{side}", rx(-bend))
    if run:
        b.turn("chest", rx(10.0)).turn("neck", rx(-8.0))
    return b.plant_feet(lift=-0.02 * skel.height if run else 0.0)


def _cycle(skel, run: bool) -> list[_PoseBuilder]:
    return [
        _stride_contact(skel, "R", run),
        _stride_passing(skel, "L", run),
        _stride_contact(skel, "L", run),
        _stride_passing(skel, "R", run),
        _stride_contact(skel, "R", run),
    ]


def _walk(skel, seat_height) -> list[_PoseBuilder]:
    return _cycle(skel, run=False)


def _run(skel, seat_height) -> list[_PoseBuilder]:
    return _cycle(skel, run=True)


def _sit(skel, seat_height) -> list[_PoseBuilder]:
    p = skel.proportions
    seat = DEFAULT_SEAT_HEIGHT if seat_height is None else float(seat_height)
    if not 0.0 <= seat <= skel.height:
        raise ValueError(f"A seat must be between 0 and {skel.height:.2f} m high for this stand-in, not {seat:g} m.")
    b = _PoseBuilder(skel)
    hip_z = seat + p.thigh_radius
    b.root_offset[2] = hip_z - p.hip_z
    thigh_length, shin_length = p.hip_z - p.knee_z, p.knee_z - p.ankle_z
    # Thighs slope down (high seat) or up (low seat) a little so the feet can reach the floor.
    drop = np.clip((hip_z - p.ankle_z - shin_length) / thigh_length, -np.sin(np.radians(45.0)),
                   np.sin(np.radians(20.0)))
    knee_z = hip_z - drop * thigh_length
    tilt = np.degrees(np.arccos(np.clip((knee_z - p.ankle_z) / shin_length, 0.0, 1.0)))
    for side, sign in (("L", 1.0), ("R", -1.0)):
        b.aim(f"thigh.{side}", (0.0, -np.sqrt(1.0 - drop * drop), -drop))
        b.aim(f"shin.{side}", (0.0, -np.sin(np.radians(tilt)), -np.cos(np.radians(tilt)))).level(f"foot.{side}")
        b.turn(f"upper_arm.{side}", rx(-15.0))
        wrist = (sign * (p.hip_half_width + 0.012 * skel.height), -0.5 * thigh_length,
                 hip_z - 0.5 * drop * thigh_length + p.thigh_radius + 0.015 * skel.height)
        b.aim_at(f"forearm.{side}", wrist)
        b.aim(f"hand.{side}", (0.0, -1.0, -0.6))
    return [b]


def _point(skel, seat_height) -> list[_PoseBuilder]:
    b = _PoseBuilder(skel)
    b.turn("chest", rz(8.0)).turn("neck", rz(-5.0))
    b.aim("upper_arm.R", (-0.08, -1.0, 0.04))
    b.turn("upper_arm.L", rx(-4.0)).turn("forearm.L", rx(-10.0))
    return [b]


def _arms_crossed(skel, seat_height) -> list[_PoseBuilder]:
    p = skel.proportions
    h = skel.height
    b = _PoseBuilder(skel)
    elbow_z = p.shoulder_z - 0.015 * h - 0.85 * p.upper_arm_length
    elbow_x = 0.85 * p.shoulder_half_width
    for side, sign, depth, lift in (("R", -1.0, 0.095, 0.02), ("L", 1.0, 0.11, 0.04)):
        b.aim_at(f"upper_arm.{side}", (sign * elbow_x, -0.075 * h, elbow_z))
        b.aim_at(f"forearm.{side}", (-sign * elbow_x, -depth * h, elbow_z + lift * h))
        b.aim(f"hand.{side}", (-sign * 0.6, 0.8, 0.1))
    return [b]


def _kneel(skel, seat_height) -> list[_PoseBuilder]:
    p = skel.proportions
    h = skel.height
    b = _PoseBuilder(skel)
    thigh_length, shin_length = p.hip_z - p.knee_z, p.knee_z - p.ankle_z
    hip_z = p.knee_radius + thigh_length  # right knee on the floor, thigh upright
    b.root_offset[2] = hip_z - p.hip_z
    b.turn("shin.R", rx(90.0)).aim("foot.R", (0.0, 1.0, -0.15))
    rise = np.clip((p.ankle_z + shin_length - hip_z) / thigh_length, -1.0, 1.0)
    b.aim("thigh.L", (0.0, -np.sqrt(1.0 - rise * rise), rise)).aim("shin.L", (0.0, 0.0, -1.0)).level("foot.L")
    b.turn("chest", rx(8.0)).turn("neck", rx(-8.0))
    knee = b.posed()["shin.L"].head
    b.turn("upper_arm.L", rx(-30.0)).aim_at("forearm.L", knee + (0.0, 0.02 * h, 0.06 * h))
    b.turn("forearm.R", rx(-10.0))
    return [b]


def _lie_down(skel, seat_height) -> list[_PoseBuilder]:
    p = skel.proportions
    b = _PoseBuilder(skel)
    b.turn("pelvis", rx(-90.0))
    b.root_offset[2] = p.torso_depth - p.hip_z
    b.turn("upper_arm.L", ry(-10.0)).turn("upper_arm.R", ry(10.0))
    b.turn("foot.L", rx(20.0)).turn("foot.R", rx(20.0)).turn("head", rx(-8.0))
    return [b]


def _talk_base(skel) -> _PoseBuilder:
    b = _PoseBuilder(skel)
    for side in ("L", "R"):
        b.turn(f"upper_arm.{side}", rx(-8.0)).turn(f"forearm.{side}", rx(-45.0))
    return b


def _talk(skel, seat_height) -> list[_PoseBuilder]:
    rest = _talk_base(skel)
    right = _talk_base(skel)
    right.turn("upper_arm.R", rx(-20.0) @ ry(12.0)).turn("forearm.R", rx(-40.0)).turn("hand.R", rx(-20.0))
    right.turn("head", rx(8.0)).turn("chest", rz(4.0))
    both = _talk_base(skel)
    both.turn("upper_arm.L", ry(-18.0)).turn("upper_arm.R", ry(18.0))
    both.turn("forearm.L", rx(-25.0)).turn("forearm.R", rx(-25.0)).turn("head", ry(5.0) @ rx(-4.0))
    left = _talk_base(skel)
    left.turn("upper_arm.L", rx(-20.0) @ ry(-12.0)).turn("forearm.L", rx(-40.0)).turn("hand.L", rx(-20.0))
    left.turn("head", rz(10.0) @ rx(6.0)).turn("chest", rz(-4.0))
    return [rest, right, both, left, _talk_base(skel)]


_BUILDERS: dict[str, Callable[[mannequin.Skeleton, float | None], list[_PoseBuilder]]] = {
    "stand": _stand,
    "walk": _walk,
    "run": _run,
    "sit": _sit,
    "point": _point,
    "arms_crossed": _arms_crossed,
    "kneel": _kneel,
    "lie_down": _lie_down,
    "talk": _talk,
}


def check_pose(name: str) -> str:
    """The pose name, or ValueError naming the poses there are."""
    if name not in _BUILDERS:
        raise ValueError(f"There is no pose named {name!r}: pick one of {', '.join(POSE_KEYS)}.")
    return name


def cycle_length(name: str, fps: float = BASE_FPS) -> int:
    """Frames per loop of a cyclic pose at ``fps``; 0 for a held pose."""
    return round(CYCLE_FRAMES.get(check_pose(name), 0) * fps / BASE_FPS)


def pose_keys(name: str, skeleton: mannequin.Skeleton, seat_height: float | None = None,
              fps: float = BASE_FPS) -> list[PoseKey]:
    """The keys of a library pose for this skeleton.

    ``seat_height`` (metres above the floor the stand-in stands on, default 0.45) is where "sit"
    rests the hips. Cycles are timed at ``fps``; their last key repeats the first.
    """
    builders = _BUILDERS[check_pose(name)](skeleton, seat_height)
    if len(builders) == 1:
        return [builders[0].key()]
    length = cycle_length(name, fps)
    count = len(builders) - 1
    return [b.key(frame_offset=round(i * length / count), cyclic=True) for i, b in enumerate(builders)]
