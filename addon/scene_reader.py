# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a shot out of the Blender scene into a ShotSpec (the bpy edge of the passes).

Walks the shot's frames once: the camera's matrix and lens, every cast stand-in's 18 COCO joints,
and a fingerprint of everything the render can see, so an unchanged shot is not rendered again.
"""

from __future__ import annotations

import hashlib

import bpy
import numpy as np
from mathutils import Vector

from . import formats, mannequin, rig, shots
from .shot_spec import CameraIntrinsics, CharacterSpec, SetSpec, ShotSpec

#: Longest side, in pixels, we render passes at (diffusion models work well up to ~1.5k).
MAX_PASS_EDGE = 2048
_DIGITS = 6


class PassInputError(Exception):
    """A shot cannot have passes; the message says what to do."""


def pass_size(scene, scale: float) -> tuple[int, int]:
    """The pass resolution for ``scale`` of the project's render size, in steps of 8."""
    if not 0.05 <= scale <= 4.0:
        raise PassInputError(f"Scale {scale} is out of range: use a value between 0.05 and 4.")

    def snap(value: float) -> int:
        return max(8, int(round(value / 8)) * 8)

    width, height = snap(scene.render.resolution_x * scale), snap(scene.render.resolution_y * scale)
    if max(width, height) > MAX_PASS_EDGE:
        raise PassInputError(
            f"{width}×{height} px is over the {MAX_PASS_EDGE} px limit for passes: lower the scale "
            f"(e.g. --scale {MAX_PASS_EDGE / max(scene.render.resolution_x, scene.render.resolution_y):.2f}) "
            "or the project resolution."
        )
    return width, height


def _rounded(values) -> list[float]:
    return [round(float(v), _DIGITS) for v in values]


def _matrix(matrix) -> list[list[float]]:
    return [_rounded(row) for row in matrix]


def _mesh_digest(mesh, cache: dict) -> str:
    if mesh.name_full not in cache:
        coords = [0.0] * (len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", coords)
        digest = hashlib.sha1(repr((_rounded(coords), len(mesh.polygons))).encode()).hexdigest()
        cache[mesh.name_full] = digest
    return cache[mesh.name_full]


#: How far a stand-in's body reaches beyond its joints (metres): the view test pads the joints by it.
BODY_REACH = 0.35


class CameraView:
    """The camera's frame at the current frame, for testing many points at once (numpy).

    The same mapping as ``bpy_extras.object_utils.world_to_camera_view`` (x, y in 0–1 across the
    frame, z the distance in front of the camera), without a Python call per point.
    """

    def __init__(self, scene, camera):
        data = camera.data
        self.world_to_local = np.array(camera.matrix_world.normalized().inverted(), dtype=np.float64)
        frame = [tuple(v) for v in data.view_frame(scene=scene)[:3]]
        self.orthographic = data.type == "ORTHO"
        self.frame_distance = -frame[0][2]  # the frame's corners lie at z = -distance
        self.min_x, self.max_x = frame[2][0], frame[1][0]
        self.min_y, self.max_y = frame[1][1], frame[0][1]
        self.clip_start, self.clip_end = data.clip_start, data.clip_end

    def project(self, points) -> np.ndarray:
        """(N, 3) world points → (N, 3) rows of (x, y, depth); x, y only meaningful in front."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        local = points @ self.world_to_local[:3, :3].T + self.world_to_local[:3, 3]
        depth = -local[:, 2]
        if self.orthographic:
            x, y = local[:, 0], local[:, 1]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(depth != 0.0, self.frame_distance / depth, 0.0)
            x, y = local[:, 0] * scale, local[:, 1] * scale
        return np.stack([(x - self.min_x) / (self.max_x - self.min_x),
                         (y - self.min_y) / (self.max_y - self.min_y), depth], axis=1)

    def sees(self, points, margin: float = 0.02) -> bool:
        """Could anything inside the convex hull of ``points`` (world space) show in the frame?

        Conservative: a hull that reaches behind the camera plane counts as seen; otherwise its
        projected bounds must overlap the frame (padded by ``margin``) within the clipping range.
        """
        projected = self.project(points)
        depths = projected[:, 2]
        if depths.max() < self.clip_start or depths.min() > self.clip_end:
            return False
        if depths.min() <= 0.0:
            return True
        xs, ys = projected[:, 0], projected[:, 1]
        return bool(xs.max() >= -margin and xs.min() <= 1 + margin and ys.max() >= -margin
                    and ys.min() <= 1 + margin)

    def sees_object(self, obj) -> bool:
        corners = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
        world = corners @ np.array(obj.matrix_world, dtype=np.float64)[:3, :3].T + np.array(obj.matrix_world.translation)
        return self.sees(world)

    def sees_body(self, joints) -> bool:
        """A stand-in from its joints, padded by how far a body reaches beyond them."""
        joints = np.asarray(joints, dtype=np.float64).reshape(-1, 3)
        low, high = joints.min(axis=0) - BODY_REACH, joints.max(axis=0) + BODY_REACH
        corners = np.array([(x, y, z) for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        return self.sees(corners)


def _pose_digest(armature) -> str:
    """Every pose bone's matrix at the current frame, as one hash (rounded like the rest)."""
    bones = armature.pose.bones
    matrices = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix", matrices)
    return hashlib.sha1(np.round(matrices, 4).tobytes()).hexdigest()


def _visible_state(scene, mesh_cache: dict, view: CameraView, seen_stand_ins: set) -> list:
    """What the render sees of the scene at the current frame (objects, transforms, poses, meshes).

    Only objects that can show in the camera's frame count, so moving something another shot sees
    leaves this shot's fingerprint alone. Stand-ins and their bodies follow ``seen_stand_ins``
    (their joints' test), other objects their bounding box.
    """
    state = []
    for obj in sorted(scene.objects, key=lambda o: o.name_full):
        if obj.hide_render or obj.type not in {"MESH", "ARMATURE", "CURVE", "SURFACE", "META", "FONT"}:
            continue
        owner = obj if rig.is_stand_in(obj) else (obj.parent if obj.parent is not None and rig.is_stand_in(obj.parent)
                                                   else None)
        if owner is not None:
            if owner.name_full not in seen_stand_ins:
                continue
        elif not view.sees_object(obj):
            continue
        entry = [obj.name_full, obj.type, obj.pass_index, _matrix(obj.matrix_world)]
        if obj.type == "MESH":
            entry.append(_mesh_digest(obj.data, mesh_cache))
            entry.append([m.type for m in obj.modifiers if m.show_render])
        elif obj.type == "ARMATURE":
            entry.append(_pose_digest(obj))
        state.append(entry)
    return state


def _sun_direction_camera(scene, camera) -> list[float] | None:
    suns = [o for o in scene.objects if o.type == "LIGHT" and o.data.type == "SUN" and not o.hide_render]
    if not suns:
        return None
    travel = suns[0].matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    in_camera = camera.matrix_world.to_3x3().inverted() @ travel
    return _rounded(in_camera.normalized())


def _character_spec(character) -> CharacterSpec:
    return CharacterSpec(
        name=character.name,
        pass_index=character.pass_index,
        color=_rounded(character.color),
        prompt=character.description,
        lora_file=character.lora_file,
        lora_trigger=character.lora_trigger,
        lora_weight=round(character.lora_weight, _DIGITS),
        reference_image=bpy.path.abspath(character.reference_image) if character.reference_image else "",
    )


def read_shot(scene, shot, scale: float = 1.0) -> ShotSpec:
    """The ShotSpec of ``shot``; raises PassInputError with a sentence for the user."""
    problem = shots.camera_problem(scene, shot)
    if problem:
        raise PassInputError(problem)
    if shot.frame_end < shot.frame_start:
        raise PassInputError(f"{shot.name} ends before it starts: fix its frame range.")
    width, height = pass_size(scene, scale)
    data = scene.standin
    project = data.project
    camera = shot.camera
    warnings = []
    cast = []
    for character in data.cast:
        stand_in = character.stand_in
        if stand_in is None or stand_in.name not in scene.objects:
            warnings.append(f"{character.name} has no stand-in in the scene, so is not in {shot.name}'s passes.")
            continue
        if stand_in.hide_render:
            continue
        cast.append((character, stand_in, _character_spec(character)))

    camera_matrices, camera_lens = {}, {}
    fingerprint = hashlib.sha256()
    mesh_cache: dict = {}
    seen_characters: set[str] = set()
    skeletons = {stand_in.name_full: rig.skeleton_of(stand_in) for _c, stand_in, _s in cast}
    sun = None
    current = scene.frame_current
    try:
        for frame in range(shot.frame_start, shot.frame_end + 1):
            scene.frame_set(frame)
            key = str(frame)
            camera_matrices[key] = _matrix(camera.matrix_world)
            camera_lens[key] = round(camera.data.lens, _DIGITS)
            view = CameraView(scene, camera)
            seen_now = set()
            for _character, stand_in, spec in cast:
                joints = rig.joint_positions(stand_in, skeletons[stand_in.name_full])
                spec.joints[key] = [_rounded(joints[name]) for name in mannequin.COCO18]
                if view.sees_body([tuple(j) for j in joints.values()]):
                    seen_now.add(stand_in.name_full)
                    seen_characters.add(spec.name)
            fingerprint.update(repr(_visible_state(scene, mesh_cache, view, seen_now)).encode())
            if frame == shot.frame_start:
                sun = _sun_direction_camera(scene, camera)
    finally:
        scene.frame_set(current)

    active_set = data.sets.get(shot.set_name) if shot.set_name else data.active_set
    rate = formats.FRAME_RATE_BY_KEY[project.fps]
    return ShotSpec(
        shot=shot.name,
        frame_start=shot.frame_start,
        frame_end=shot.frame_end,
        fps=round(rate.rate, _DIGITS),
        width=width,
        height=height,
        camera=CameraIntrinsics(
            lens_mm=round(camera.data.lens, _DIGITS),
            sensor_width_mm=round(camera.data.sensor_width, _DIGITS),
            sensor_height_mm=round(camera.data.sensor_height, _DIGITS),
            sensor_fit=camera.data.sensor_fit,
            shift_x=round(camera.data.shift_x, _DIGITS),
            shift_y=round(camera.data.shift_y, _DIGITS),
            clip_start=round(camera.data.clip_start, _DIGITS),
            clip_end=round(camera.data.clip_end, _DIGITS),
        ),
        camera_matrices=camera_matrices,
        camera_lens=camera_lens,
        # characters that never come near the frame are not part of this shot (nor of its hashes)
        characters=[spec for _c, _s, spec in cast if spec.name in seen_characters],
        set=SetSpec(active_set.name, active_set.prompt, active_set.seed, active_set.time_of_day)
        if active_set is not None else None,
        sun_direction_camera=sun,
        style_prompt=project.style_prompt,
        negative_prompt=project.negative_prompt,
        action=shot.action,
        shot_size=shot.shot_size,
        canny_low=project.canny_low,
        canny_high=project.canny_high,
        geometry_fingerprint=fingerprint.hexdigest(),
        warnings=warnings,
    )


def stand_in_objects(scene, spec: ShotSpec) -> list:
    """The objects to hide for the background-only passes: every stand-in and its body."""
    hidden = []
    for character in scene.standin.cast:
        stand_in = character.stand_in
        if stand_in is None or stand_in.name not in scene.objects:
            continue
        hidden.append(stand_in)
        hidden.extend(child for child in stand_in.children_recursive if child.name in scene.objects)
    return hidden
