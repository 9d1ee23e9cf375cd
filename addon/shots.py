# SPDX-License-Identifier: GPL-3.0-or-later
"""Shots in the scene: their cameras, frame ranges and the timeline markers that cut between them.

The model: the scene's timeline is the action; each shot is a camera covering a range of it.
A timeline marker named after the shot sits on its first frame with the shot's camera bound,
so scrubbing or playing the timeline cuts from camera to camera like an edit. The order of
``scene.standin.shots`` is the editorial order (the animatic plays shots in that order).
"""

from __future__ import annotations

import bpy
from mathutils import Matrix

from . import animation, camera_moves, formats, framing, project_paths, rig, shot_names

CAMERA_COLLECTION = "StandIn Cameras"
DEFAULT_DURATION = 48


class ShotError(Exception):
    """A problem with a shot, phrased for the user (the operators report it as is)."""


# --- names and ranges --------------------------------------------------------------------


def shot_index(scene, name: str) -> int:
    return scene.standin.shots.find(name)


def new_shot_name(scene, after: str | None = None) -> str:
    """A free name after ``after`` (before the next shot in the list), or at the end."""
    shots = scene.standin.shots
    names = [s.name for s in shots]
    if after is None:
        return shot_names.next_name(names)
    position = shots.find(after)
    following = next(
        (s.name for s in list(shots)[position + 1 :] if shot_names.is_valid(s.name)),
        None,
    )
    return shot_names.between(after, following, names)


def _timeline_end(scene) -> int:
    return max((s.frame_end for s in scene.standin.shots), default=scene.frame_start - 1)


def update_scene_range(scene) -> None:
    """Make the scene's frame range cover every shot."""
    shots = scene.standin.shots
    if len(shots):
        scene.frame_start = min(s.frame_start for s in shots)
        scene.frame_end = max(s.frame_end for s in shots)


# --- cameras -----------------------------------------------------------------------------


def _camera_collection(scene):
    collection = bpy.data.collections.get(CAMERA_COLLECTION)
    if collection is None:
        collection = bpy.data.collections.new(CAMERA_COLLECTION)
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)
    return collection


def create_camera(scene, shot):
    """A new camera object for ``shot``, in the StandIn cameras collection."""
    data = bpy.data.cameras.new(f"CAM_{shot.name}")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = formats.SENSOR_BY_KEY[shot.sensor].width_mm
    data.lens = shot.lens
    data.passepartout_alpha = 0.85
    data.show_name = True
    obj = bpy.data.objects.new(f"CAM_{shot.name}", data)
    obj["standin_shot"] = shot.name
    _camera_collection(scene).objects.link(obj)
    shot.camera = obj
    return obj


def camera_problem(scene, shot) -> str:
    """Why the shot's camera cannot be used, or '' when it can."""
    camera = shot.camera
    if camera is None or camera.name not in scene.objects:
        return f"{shot.name}: its camera was deleted. Pick a camera for it or press 'Re-frame' to make a new one."
    return ""


# --- markers: the cut --------------------------------------------------------------------


def sync_markers(scene) -> None:
    """One marker per usable shot at its first frame, bound to its camera.

    Markers we made for shots that no longer exist (named like a shot) are removed; markers
    the user made are left alone.
    """
    markers = scene.timeline_markers
    shots = {s.name: s for s in scene.standin.shots}
    for marker in list(markers):
        if shot_names.is_valid(marker.name) and (
            marker.name not in shots or camera_problem(scene, shots[marker.name])
        ):
            markers.remove(marker)
    for shot in shots.values():
        if camera_problem(scene, shot):
            continue
        marker = markers.get(shot.name) or markers.new(shot.name, frame=shot.frame_start)
        marker.frame = shot.frame_start
        marker.camera = shot.camera
    update_scene_range(scene)


# --- validation --------------------------------------------------------------------------


def validate_shots(scene) -> list[str]:
    """Mark broken shots (and un-mark mended ones); returns one sentence per problem."""
    problems = []
    shots = scene.standin.shots
    seen: dict[str, int] = {}
    for shot in shots:
        seen[shot.name] = seen.get(shot.name, 0) + 1
    for shot in shots:
        problem = camera_problem(scene, shot)
        if not problem and seen[shot.name] > 1:
            problem = f"Two shots are named {shot.name}: rename one of them."
        if not problem and shot.frame_end < shot.frame_start:
            problem = f"{shot.name} ends (frame {shot.frame_end}) before it starts ({shot.frame_start}): fix its range."
        if problem:
            problems.append(problem)
            if shot.status != "BROKEN" or shot.problem != problem:
                shot.status = "BROKEN"
                shot.problem = problem
        elif shot.status == "BROKEN":
            shot.status = "BLOCKING"
            shot.problem = ""
    return problems


# --- creating shots ----------------------------------------------------------------------


def add_shot(
    scene,
    name: str | None = None,
    *,
    after: str | None = None,
    frame_start: int | None = None,
    duration: int = DEFAULT_DURATION,
    camera=None,
):
    """Add a shot (and a camera for it unless one is given) and return it.

    Appended shots start after the last shot. A shot inserted ``after`` another takes the
    second half of that shot's range: a cut-in on the same action, the way coverage is edited.
    """
    data = scene.standin
    if name is None:
        name = new_shot_name(scene, after)
    if not shot_names.is_valid(name):
        raise ShotError(f"'{name}' is not a shot name: use the SQ010_SH0010 form.")
    if data.shots.find(name) >= 0:
        raise ShotError(f"There is already a shot named {name}: pick another name.")
    if duration < 1:
        raise ShotError("A shot needs at least one frame.")

    split_from = data.shots.get(after) if after else None
    append_start = _timeline_end(scene) + 1
    shot = data.shots.add()
    shot.name = name
    if frame_start is not None:
        shot.frame_start, shot.frame_end = frame_start, frame_start + duration - 1
    elif split_from is not None and split_from.duration >= 2:
        cut = split_from.frame_start + split_from.duration // 2
        shot.frame_start, shot.frame_end = cut, split_from.frame_end
        split_from.frame_end = cut - 1
    else:
        shot.frame_start, shot.frame_end = append_start, append_start + duration - 1
    if split_from is not None:
        shot.set_name = split_from.set_name
    elif data.active_set is not None:
        shot.set_name = data.active_set.name

    new_index = len(data.shots) - 1
    target = data.shots.find(after) + 1 if after and data.shots.find(after) >= 0 else new_index
    data.shots.move(new_index, target)
    data.shot_index = target
    shot = data.shots[target]
    if camera is not None:
        shot.camera = camera
        camera["standin_shot"] = shot.name
    else:
        create_camera(scene, shot)
    sync_markers(scene)
    return shot


def remove_shot(scene, name: str, delete_camera: bool = True) -> None:
    data = scene.standin
    index = data.shots.find(name)
    if index < 0:
        raise ShotError(f"There is no shot named {name}.")
    camera = data.shots[index].camera
    data.shots.remove(index)
    data.shot_index = min(data.shot_index, len(data.shots) - 1)
    if delete_camera and camera is not None and camera.get("standin_shot") == name:
        camera_data = camera.data
        bpy.data.objects.remove(camera)
        if camera_data.users == 0:
            bpy.data.cameras.remove(camera_data)
    sync_markers(scene)


def rename_shot(scene, old: str, new: str) -> None:
    data = scene.standin
    if not shot_names.is_valid(new):
        raise ShotError(f"'{new}' is not a shot name: use the SQ010_SH0010 form.")
    if new != old and data.shots.find(new) >= 0:
        raise ShotError(f"There is already a shot named {new}: pick another name.")
    shot = data.shots.get(old)
    if shot is None:
        raise ShotError(f"There is no shot named {old}.")
    if new != old:
        _move_output_folder(scene, shot, old, new)
    marker = scene.timeline_markers.get(old)
    shot.name = new
    if marker is not None:
        marker.name = new
    if shot.camera is not None and shot.camera.get("standin_shot") == old:
        shot.camera["standin_shot"] = new
        shot.camera.name = f"CAM_{new}"
    sync_markers(scene)
    if shot.active_take is not None:
        from . import take_display

        take_display.show(scene, shot)


def _move_output_folder(scene, shot, old: str, new: str) -> None:
    """A renamed shot takes its passes and takes along: ``<output>/<old>/`` becomes ``<output>/<new>/``."""
    import pathlib

    root = project_paths.output_root(scene)
    if root is None:
        return  # nothing was written next to an unsaved file
    source, target = root / old, root / new
    if not source.is_dir():
        return
    if target.exists():
        raise ShotError(f"{target} already exists: move or delete it before renaming {old} to {new}.")
    try:
        source.rename(target)
    except OSError as error:
        raise ShotError(f"Cannot move {source} to {target} ({error.strerror or error}): "
                        "close what uses its files and rename again.") from error
    for take in shot.takes:
        folder = pathlib.Path(bpy.path.abspath(take.folder))
        if folder.is_relative_to(source):
            moved = target / folder.relative_to(source)
            take.folder = project_paths.blend_relative(moved)
    image = bpy.data.images.get(f"StandIn take {old}")
    if image is not None:
        bpy.data.images.remove(image)  # shown again from the moved folder below


def duplicate_shot(scene, name: str):
    """A copy of the shot right after it in the list, at the end of the timeline, with its own camera."""
    data = scene.standin
    source = data.shots.get(name)
    if source is None:
        raise ShotError(f"There is no shot named {name}.")
    copy = add_shot(scene, after=name, frame_start=_timeline_end(scene) + 1, duration=source.duration)
    for key in ("shot_size", "lens", "sensor", "angle", "variant", "move", "move_amount", "easing",
                "action", "notes", "set_name"):
        setattr(copy, key, getattr(source, key))
    for subject in source.subjects:
        copy.subjects.add().name = subject.name
    if source.camera is not None and not camera_problem(scene, source):
        offset = copy.frame_start - source.frame_start
        copy.camera.matrix_basis = source.camera.matrix_basis.copy()
        copy.camera.data.lens = source.camera.data.lens
        copy.camera.data.sensor_width = source.camera.data.sensor_width
        _copy_camera_animation(scene, source.camera, copy.camera, range(source.frame_start, source.frame_end + 1), offset)
    return copy


def _copy_camera_animation(scene, source, target, frames: range, frame_offset: int) -> None:
    """Key ``target`` on every frame so it moves as ``source`` does, ``frame_offset`` later.

    Sampling the evaluated camera copies any animation (ours or hand-keyed) the same way on
    Blender 4.5 and 5.x, whose action APIs differ.
    """
    if source.animation_data is None and source.data.animation_data is None:
        return
    current = scene.frame_current
    samples = []
    for frame in frames:
        scene.frame_set(frame)
        samples.append((frame + frame_offset, source.matrix_world.copy(), source.data.lens))
    scene.frame_set(current)
    keys = [camera_moves.CameraKey(f, tuple(map(tuple, m)), lens) for f, m, lens in samples]
    placement = framing.CameraPlacement(
        matrix_world=keys[0].matrix_world,
        lens_mm=keys[0].lens_mm,
        sensor_width_mm=source.data.sensor_width,
        aspect=scene.render.resolution_x / scene.render.resolution_y,
        shift_x=source.data.shift_x,
        shift_y=source.data.shift_y,
    )
    apply_camera_keys(target, placement, keys)


def move_shot(scene, name: str, direction: int) -> None:
    """Move a shot up (-1) or down (+1) in the editorial order."""
    data = scene.standin
    index = data.shots.find(name)
    target = index + direction
    if index < 0 or not 0 <= target < len(data.shots):
        return
    data.shots.move(index, target)
    data.shot_index = target


def jump_to_shot(scene, shot) -> None:
    """Put the playhead on the shot's first frame, looking through its camera."""
    problem = camera_problem(scene, shot)
    if problem:
        raise ShotError(problem)
    scene.frame_set(shot.frame_start)
    scene.camera = shot.camera


# --- framing the camera ------------------------------------------------------------------


def subjects_of(scene, shot) -> list[framing.Subject]:
    """The framing subjects of a shot, read off its characters' stand-ins at its first frame."""
    data = scene.standin
    subjects = []
    for entry in shot.subjects:
        character = data.cast.get(entry.name)
        if character is None:
            raise ShotError(f"{shot.name} frames '{entry.name}', who is no longer in the cast: pick its subjects again.")
        stand_in = character.stand_in
        if stand_in is None or stand_in.name not in scene.objects:
            raise ShotError(f"{character.name} has no stand-in in the scene: add one (Cast panel) and re-frame {shot.name}.")
        subjects.append(rig.subject_from_stand_in(stand_in))
    return subjects


def frame_shot(scene, shot) -> framing.CameraPlacement:
    """Place the shot's camera to frame its subjects at its size, then key its move."""
    if not len(shot.subjects):
        raise ShotError(f"{shot.name} frames no one: select a stand-in and use 'New shot from selection'.")
    if camera_problem(scene, shot):
        create_camera(scene, shot)
    current = scene.frame_current
    scene.frame_set(shot.frame_start)
    try:
        subjects = subjects_of(scene, shot)
    finally:
        scene.frame_set(current)
    width, height = scene.render.resolution_x, scene.render.resolution_y
    try:
        placement = framing.frame_subjects(
            subjects,
            shot.shot_size,
            lens_mm=shot.lens,
            sensor_width_mm=formats.SENSOR_BY_KEY[shot.sensor].width_mm,
            aspect=width / height,
            angle=shot.angle,
            variant=shot.variant,
        )
    except ValueError as error:
        raise ShotError(f"{shot.name}: {error}") from error
    pivot = subjects[-1].eyes if shot.variant == "OTS" else _mean([s.eyes for s in subjects])
    try:
        keys = camera_moves.move_keys(
            placement, shot.move, shot.move_amount, shot.frame_start, shot.frame_end, shot.easing, pivot=pivot
        )
    except ValueError as error:
        raise ShotError(f"{shot.name}: {error}") from error
    apply_camera_keys(shot.camera, placement, keys)
    sync_markers(scene)
    return placement


def _mean(points):
    return tuple(sum(p[i] for p in points) / len(points) for i in range(3))


def apply_camera_keys(camera, placement: framing.CameraPlacement, keys) -> None:
    """Set the camera from a placement and key every frame of its move (linear between keys,
    the easing is in the keys themselves so what Blender plays is what the maths computed)."""
    camera.animation_data_clear()
    camera.data.animation_data_clear()
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.sensor_width = placement.sensor_width_mm
    camera.data.shift_x = placement.shift_x
    camera.data.shift_y = placement.shift_y
    camera.rotation_mode = "XYZ"
    camera.matrix_world = Matrix(placement.matrix_world)
    camera.data.lens = placement.lens_mm
    if len(keys) < 2:
        return
    zooms = any(abs(key.lens_mm - keys[0].lens_mm) > 1e-6 for key in keys)
    previous = None
    for key in keys:
        matrix = Matrix(key.matrix_world)
        location, rotation, _scale = matrix.decompose()
        euler = rotation.to_euler("XYZ", previous) if previous is not None else rotation.to_euler("XYZ")
        previous = euler
        camera.location = location
        camera.rotation_euler = euler
        camera.keyframe_insert("location", frame=key.frame)
        camera.keyframe_insert("rotation_euler", frame=key.frame)
        if zooms:
            camera.data.lens = key.lens_mm
            camera.data.keyframe_insert("lens", frame=key.frame)
    animation.set_interpolation(camera)
    animation.set_interpolation(camera.data)
