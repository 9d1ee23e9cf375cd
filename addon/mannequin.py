# SPDX-License-Identifier: GPL-3.0-or-later
"""The humanoid stand-in as plain data: its rest skeleton and its segmented body mesh. Pure Python.

Conventions (Blender's): Z up, metres. The stand-in stands at the origin with its soles on z = 0,
FACING -Y (Blender's front view), so its own LEFT side is +X. Bones follow Blender's ``.L`` / ``.R``
naming so X-mirror posing works.

Every COCO-18 keypoint (the OpenPose order, the subject's own left/right) is one end of a real
bone, so a posed rig can be projected keypoint by keypoint; ``Skeleton.joints`` says which end.
The head bone's tail is the top of the head (``Skeleton.head_top``), for framing.

Proportions follow the height: a small child is about 5 heads tall, a tall adult about 7.8,
with longer legs relative to the body as the figure grows.
"""

from dataclasses import dataclass, field

import numpy as np

#: The OpenPose COCO-18 keypoint names, in their order.
COCO18 = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
)

MIN_HEIGHT = 0.9
MAX_HEIGHT = 2.2

#: (standing height in m, heads per height): children have big heads, adults small ones.
_HEADS_TALL_BY_HEIGHT = ((0.9, 5.0), (1.1, 5.5), (1.9, 7.5), (2.2, 7.8))

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Bone:
    """One rest bone in armature space (metres); ``parent`` is None for the root."""

    name: str
    parent: str | None
    head: Vec3
    tail: Vec3
    roll: float = 0.0
    deform: bool = True

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.subtract(self.tail, self.head)))


@dataclass(frozen=True)
class Proportions:
    """The measurements a skeleton and its body are built from (metres, at rest)."""

    height: float
    heads_tall: float
    head_length: float  # chin to crown
    chin_z: float
    shoulder_z: float  # the COCO neck: the middle of the shoulder line
    waist_z: float
    hip_z: float  # hip joint centres
    knee_z: float
    ankle_z: float
    shoulder_half_width: float
    hip_half_width: float
    upper_arm_length: float
    forearm_length: float
    hand_length: float
    foot_length: float
    thigh_radius: float  # at the top of the thigh: how far the hip joint sits above a seat
    knee_radius: float
    torso_depth: float  # half the front-to-back depth of the pelvis


@dataclass(frozen=True)
class Skeleton:
    """A rest skeleton: bones (parents before children) and where each COCO joint is."""

    height: float
    proportions: Proportions
    bones: tuple[Bone, ...]
    #: COCO-18 name -> (bone name, "head" | "tail"): the bone end that IS the joint.
    joints: dict[str, tuple[str, str]]
    #: The top of the head, a bone end like the joints.
    head_top: tuple[str, str] = ("head", "tail")
    root: str = "pelvis"

    def bone(self, name: str) -> Bone:
        for bone in self.bones:
            if bone.name == name:
                return bone
        raise KeyError(f"The stand-in skeleton has no bone named {name!r}.")

    @property
    def bone_names(self) -> tuple[str, ...]:
        return tuple(bone.name for bone in self.bones)

    def rest_point(self, bone_end: tuple[str, str]) -> Vec3:
        """Rest position of a (bone name, "head" | "tail") end."""
        bone_name, end = bone_end
        bone = self.bone(bone_name)
        return bone.head if end == "head" else bone.tail

    def rest_joints(self) -> dict[str, Vec3]:
        """Rest positions of the 18 COCO joints and of ``head_top``."""
        points = {name: self.rest_point(end) for name, end in self.joints.items()}
        points["head_top"] = self.rest_point(self.head_top)
        return points


@dataclass
class BodyMesh:
    """A closed, segmented body: vertices, polygons (outward normals), bone name -> vertex indices."""

    verts: list[Vec3] = field(default_factory=list)
    faces: list[tuple[int, ...]] = field(default_factory=list)
    groups: dict[str, list[int]] = field(default_factory=dict)


# --- proportions ----------------------------------------------------------------------------


def heads_tall(height_m: float) -> float:
    """How many head lengths make up the standing height (5 for a toddler, 7.5 for a tall adult)."""
    heights, heads = zip(*_HEADS_TALL_BY_HEIGHT)
    return float(np.interp(height_m, heights, heads))


def check_height(height_m: float) -> float:
    """The height as a float, or ValueError when a stand-in cannot be that tall."""
    height = float(height_m)
    if not MIN_HEIGHT <= height <= MAX_HEIGHT:
        raise ValueError(
            f"A stand-in must be between {MIN_HEIGHT} m and {MAX_HEIGHT} m tall, not {height:g} m."
        )
    return height


def proportions(height_m: float) -> Proportions:
    """Body measurements for a stand-in of this height (child-like below ~1.3 m)."""
    h = check_height(height_m)
    heads = heads_tall(h)
    adult = float(np.clip((heads - 5.0) / 2.5, 0.0, 1.0))  # 0 toddler .. 1 tall adult
    head = h / heads
    chin_z = h - head
    shoulder_z = chin_z - head * (0.25 + 0.05 * adult)
    hip_z = h * (0.47 + 0.05 * adult)
    ankle_z = 0.045 * h
    return Proportions(
        height=h,
        heads_tall=heads,
        head_length=head,
        chin_z=chin_z,
        shoulder_z=shoulder_z,
        waist_z=hip_z + 0.3 * (shoulder_z - hip_z),
        hip_z=hip_z,
        knee_z=ankle_z + 0.52 * (hip_z - ankle_z),
        ankle_z=ankle_z,
        shoulder_half_width=h * (0.095 + 0.01 * adult),
        hip_half_width=h * (0.048 + 0.005 * adult),
        upper_arm_length=h * (0.172 + 0.014 * adult),
        forearm_length=h * (0.135 + 0.012 * adult),
        hand_length=h * (0.1 + 0.008 * adult),
        foot_length=h * 0.152,
        thigh_radius=0.05 * h,
        knee_radius=0.033 * h,
        torso_depth=0.065 * h,
    )


# --- skeleton -------------------------------------------------------------------------------

#: Arms hang this far out from the vertical at rest (degrees), clear of the hips.
ARM_REST_ABDUCTION_DEG = 8.0


def _side_bones(side: str, sign: float, p: Proportions) -> list[Bone]:
    """Arm and leg bones of one side; ``sign`` is +1 for the left (+X), -1 for the right."""
    h = p.height
    tilt = np.radians(ARM_REST_ABDUCTION_DEG)
    down_out = np.array([sign * np.sin(tilt), 0.0, -np.cos(tilt)])
    shoulder = np.array([sign * p.shoulder_half_width, 0.0, p.shoulder_z - 0.015 * h])
    elbow = shoulder + down_out * p.upper_arm_length
    wrist = elbow + down_out * p.forearm_length
    fingertips = wrist + down_out * p.hand_length
    x = sign * p.hip_half_width
    toe = (x, -0.72 * p.foot_length, 0.015 * h)

    def vec(a) -> Vec3:
        return tuple(float(c) for c in a)

    return [
        Bone(f"shoulder.{side}", "chest", (sign * 0.015 * h, 0.0, p.shoulder_z - 0.005 * h), vec(shoulder),
             deform=False),
        Bone(f"upper_arm.{side}", f"shoulder.{side}", vec(shoulder), vec(elbow)),
        Bone(f"forearm.{side}", f"upper_arm.{side}", vec(elbow), vec(wrist)),
        Bone(f"hand.{side}", f"forearm.{side}", vec(wrist), vec(fingertips)),
        Bone(f"thigh.{side}", "pelvis", (x, 0.0, p.hip_z), (x, 0.0, p.knee_z)),
        Bone(f"shin.{side}", f"thigh.{side}", (x, 0.0, p.knee_z), (x, 0.0, p.ankle_z)),
        Bone(f"foot.{side}", f"shin.{side}", (x, 0.0, p.ankle_z), toe),
    ]


def _face_bones(p: Proportions) -> list[Bone]:
    """Small leaf bones on the head whose tails are the nose tip, the eyes and the ears."""
    hl, chin = p.head_length, p.chin_z
    eye_z, ear_z, nose_z = chin + 0.5 * hl, chin + 0.45 * hl, chin + 0.33 * hl
    bones = [Bone("nose", "head", (0.0, -0.25 * hl, nose_z), (0.0, -0.47 * hl, nose_z), deform=True)]
    for side, sign in (("L", 1.0), ("R", -1.0)):
        eye_x = sign * 0.135 * hl
        bones.append(Bone(f"eye.{side}", "head", (eye_x, -0.2 * hl, eye_z), (eye_x, -0.4 * hl, eye_z), deform=False))
        bones.append(Bone(f"ear.{side}", "head", (sign * 0.15 * hl, 0.03 * hl, ear_z),
                          (sign * 0.34 * hl, 0.03 * hl, ear_z), deform=False))
    return bones


def skeleton(height_m: float) -> Skeleton:
    """The rest skeleton of a stand-in this tall, standing at the origin and facing -Y.

    Raises ValueError outside 0.9–2.2 m.
    """
    p = proportions(height_m)
    h, hl = p.height, p.head_length
    head_pivot_z = p.chin_z + 0.25 * hl
    bones = [
        Bone("pelvis", None, (0.0, 0.0, p.hip_z), (0.0, 0.0, p.waist_z)),
        Bone("chest", "pelvis", (0.0, 0.0, p.waist_z), (0.0, 0.0, p.shoulder_z)),
        Bone("neck", "chest", (0.0, 0.0, p.shoulder_z), (0.0, 0.0, head_pivot_z)),
        Bone("head", "neck", (0.0, 0.0, head_pivot_z), (0.0, 0.0, h)),
    ]
    bones += _face_bones(p)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        bones += _side_bones(side, sign, p)
    joints = {
        "nose": ("nose", "tail"),
        "neck": ("neck", "head"),
        "r_eye": ("eye.R", "tail"),
        "l_eye": ("eye.L", "tail"),
        "r_ear": ("ear.R", "tail"),
        "l_ear": ("ear.L", "tail"),
    }
    for side, prefix in (("R", "r"), ("L", "l")):
        joints[f"{prefix}_shoulder"] = (f"upper_arm.{side}", "head")
        joints[f"{prefix}_elbow"] = (f"forearm.{side}", "head")
        joints[f"{prefix}_wrist"] = (f"hand.{side}", "head")
        joints[f"{prefix}_hip"] = (f"thigh.{side}", "head")
        joints[f"{prefix}_knee"] = (f"shin.{side}", "head")
        joints[f"{prefix}_ankle"] = (f"foot.{side}", "head")
    joints = {name: joints[name] for name in COCO18}
    return Skeleton(height=h, proportions=p, bones=tuple(bones), joints=joints)


# --- bone rest frames -----------------------------------------------------------------------


def _axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit axis (right-handed)."""
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    t = 1.0 - c
    return np.array([
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ])


def vec_roll_to_matrix(direction, roll: float = 0.0) -> np.ndarray:
    """A bone's rest orientation (3x3, columns = local X, Y, Z in armature space).

    The same construction as Blender's ``vec_roll_to_mat3``: local Y runs head to tail, X and Z
    come from the shortest rotation of the armature's Y onto it, then turn by ``roll`` about Y.
    """
    nor = np.asarray(direction, dtype=float)
    nor = nor / np.linalg.norm(nor)
    x, y, z = nor
    safe_threshold, critical_threshold = 6.1e-3, 2.5e-4
    theta = 1.0 + y
    theta_alt = x * x + z * z
    if theta > safe_threshold or theta_alt > critical_threshold**2:
        if theta <= safe_threshold:
            theta = theta_alt * 0.5 + theta_alt * theta_alt * 0.125
        base = np.array([
            [1.0 - x * x / theta, x, -x * z / theta],
            [-x, y, -z],
            [-x * z / theta, z, 1.0 - z * z / theta],
        ])
    else:  # pointing down -Y: mirror about Z
        base = np.diag([-1.0, -1.0, 1.0])
    return _axis_angle_matrix(nor, roll) @ base


def rest_matrix(bone: Bone) -> np.ndarray:
    """The bone's rest orientation in armature space (Blender's ``Bone.matrix_local`` 3x3 part)."""
    return vec_roll_to_matrix(np.subtract(bone.tail, bone.head), bone.roll)


# --- body mesh ------------------------------------------------------------------------------


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors across ``axis``: the first as close to +X as can be, the second to -Y/+Z."""
    reference = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    across = reference - np.dot(reference, axis) * axis
    across /= np.linalg.norm(across)
    return across, np.cross(axis, across)


def _ellipse(center, across, depth, radius_across: float, radius_depth: float, sides: int) -> list[np.ndarray]:
    angles = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    return [np.asarray(center) + np.cos(a) * radius_across * across + np.sin(a) * radius_depth * depth
            for a in angles]


def _rectangle(center, across, depth, half_across: float, half_depth: float) -> list[np.ndarray]:
    center = np.asarray(center)
    return [center + sx * half_across * across + sy * half_depth * depth
            for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]


def _limb(start, end, radii: list[tuple[float, float, float]], sides: int = 8, box: bool = False):
    """Rings along start -> end: ``radii`` are (fraction along, radius across, radius in depth)."""
    start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    axis = (end - start) / np.linalg.norm(end - start)
    across, depth = _frame(axis)
    rings = []
    for t, r_across, r_depth in radii:
        center = start + t * (end - start)
        if box:
            rings.append(_rectangle(center, across, depth, r_across, r_depth))
        else:
            rings.append(_ellipse(center, across, depth, r_across, r_depth, sides))
    return rings


def _signed_volume(points: np.ndarray, faces: list[tuple[int, ...]]) -> float:
    volume = 0.0
    for face in faces:
        a = points[face[0]]
        for i in range(1, len(face) - 1):
            volume += np.dot(a, np.cross(points[face[i]], points[face[i + 1]])) / 6.0
    return volume


def _closed_tube(rings: list[list[np.ndarray]]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A closed solid through rings of equal size: side quads and two n-gon caps, normals outward."""
    sides = len(rings[0])
    points = np.array([p for ring in rings for p in ring], dtype=float)
    faces: list[tuple[int, ...]] = []
    for r in range(len(rings) - 1):
        a, b = r * sides, (r + 1) * sides
        for i in range(sides):
            j = (i + 1) % sides
            faces.append((a + i, a + j, b + j, b + i))
    last = (len(rings) - 1) * sides
    faces.append(tuple(reversed(range(sides))))
    faces.append(tuple(range(last, last + sides)))
    if _signed_volume(points - points.mean(axis=0), faces) < 0.0:
        faces = [tuple(reversed(face)) for face in faces]
    return points, faces


def _segments(skel: Skeleton) -> list[tuple[str, list[list[np.ndarray]]]]:
    """(bone name, rings) for every body segment."""
    p = skel.proportions
    h, hl = p.height, p.head_length
    segments = []
    head = []
    for t, rx, ry, yc in ((0.0, 0.14, 0.14, -0.2), (0.25, 0.28, 0.34, -0.05), (0.55, 0.33, 0.42, 0.0),
                          (0.85, 0.28, 0.36, 0.02), (1.0, 0.12, 0.15, 0.02)):
        center = (0.0, yc * hl, p.chin_z + t * hl)
        head.append(_ellipse(center, np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), rx * hl, ry * hl, 12))
    segments.append(("head", head))
    nose_z = skel.bone("nose").head[2]
    segments.append(("nose", [
        _rectangle((0.0, -0.36 * hl, nose_z + 0.06 * hl), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]),
                   0.06 * hl, 0.1 * hl),
        _rectangle((0.0, -0.48 * hl, nose_z), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 0.025 * hl, 0.03 * hl),
    ]))
    neck = skel.bone("neck")
    segments.append(("neck", _limb(np.add(neck.head, (0, 0, -0.01 * h)), np.add(neck.tail, (0, 0, 0.01 * h)),
                                   [(0.0, 0.028 * h, 0.028 * h), (1.0, 0.024 * h, 0.026 * h)])))
    segments.append(("chest", _limb((0, 0, p.waist_z), (0, 0, p.shoulder_z + 0.01 * h), [
        (0.0, 0.076 * h, 0.056 * h), (0.5, 0.09 * h, 0.066 * h), (0.8, 0.1 * h, 0.062 * h),
        (1.0, 0.06 * h, 0.045 * h)])))
    segments.append(("pelvis", _limb((0, 0, p.hip_z - 0.04 * h), (0, 0, p.waist_z), [
        (0.0, 0.085 * h, 0.058 * h), (0.3, 0.095 * h, p.torso_depth), (1.0, 0.078 * h, 0.057 * h)])))
    for side in ("L", "R"):
        segments += _side_segments(skel, side)
    return segments


def _side_segments(skel: Skeleton, side: str) -> list[tuple[str, list[list[np.ndarray]]]]:
    p = skel.proportions
    h = p.height
    sign = 1.0 if side == "L" else -1.0

    def bone_limb(name, radii, extend_start=0.0, box=False):
        bone = skel.bone(f"{name}.{side}")
        head, tail = np.array(bone.head), np.array(bone.tail)
        start = head - extend_start * (tail - head) / np.linalg.norm(tail - head)
        return (bone.name, _limb(start, tail, radii, box=box))

    x = sign * p.hip_half_width
    heel_y, toe_y = 0.2 * p.foot_length, -0.8 * p.foot_length
    half = 0.024 * h
    foot = [
        [np.array(c) for c in ((x - half, heel_y, 0.0), (x + half, heel_y, 0.0),
                               (x + half, heel_y, p.ankle_z + 0.01 * h), (x - half, heel_y, p.ankle_z + 0.01 * h))],
        [np.array(c) for c in ((x - 1.1 * half, toe_y, 0.0), (x + 1.1 * half, toe_y, 0.0),
                               (x + 1.1 * half, toe_y, 0.02 * h), (x - 1.1 * half, toe_y, 0.02 * h))],
    ]
    return [
        bone_limb("upper_arm", [(0.0, 0.03 * h, 0.032 * h), (1.0, 0.025 * h, 0.025 * h)], extend_start=0.02 * h),
        bone_limb("forearm", [(0.0, 0.024 * h, 0.024 * h), (1.0, 0.017 * h, 0.019 * h)]),
        bone_limb("hand", [(0.0, 0.01 * h, 0.021 * h), (0.6, 0.011 * h, 0.025 * h), (1.0, 0.008 * h, 0.018 * h)],
                  box=True),
        bone_limb("thigh", [(0.0, p.thigh_radius, p.thigh_radius), (1.0, p.knee_radius, p.knee_radius)],
                  extend_start=0.02 * h),
        bone_limb("shin", [(0.0, 0.032 * h, 0.032 * h), (1.0, 0.021 * h, 0.021 * h)]),
        (f"foot.{side}", foot),
    ]


def body_mesh(skel: Skeleton) -> BodyMesh:
    """A simple segmented mannequin for the skeleton: one closed low-poly solid per body segment.

    Each segment's vertices belong to exactly one vertex group, named after its bone, so the
    body deforms rigidly piece by piece like a wooden artist's mannequin.
    """
    mesh = BodyMesh()
    for bone_name, rings in _segments(skel):
        points, faces = _closed_tube(rings)
        offset = len(mesh.verts)
        mesh.verts += [tuple(float(c) for c in point) for point in points]
        mesh.faces += [tuple(offset + i for i in face) for face in faces]
        mesh.groups.setdefault(bone_name, []).extend(range(offset, offset + len(points)))
    return mesh
