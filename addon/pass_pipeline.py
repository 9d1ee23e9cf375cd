# SPDX-License-Identifier: GPL-3.0-or-later
"""A shot's control passes, from one render per frame to a committed shot package.

``shot_passes`` is a generator: it yields a ``Progress`` after every render and returns a
``ShotPassResult``. The CLI drives it in a loop; the Blender operator drives it one step per timer
tick (``PassJob``), so Esc can stop it between frames. Closing the generator early discards the
staging folder and restores the scene: a cancelled run leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Generator

import cv2
import numpy as np

from . import framing, openpose, pass_images, project_paths, scene_reader, shot_package
from .render_passes import PassRenderer
from .shot_spec import ShotSpec

#: Joints this far (metres, plus 2 % of the distance) behind the rendered surface count as hidden.
OCCLUSION_TOLERANCE = 0.15
#: A character's reference image (IP-Adapter input, for bit parts) travels in the package as
#: ``reference/<name>.png``, its long edge at most REFERENCE_MAX_EDGE.
REFERENCE_FOLDER = "reference"
REFERENCE_MAX_EDGE = 1024


@dataclass
class Progress:
    shot: str
    done: int
    total: int
    stage: str


@dataclass
class ShotPassResult:
    shot: str
    status: str  # rendered | skipped | metadata | failed | cancelled
    package_dir: pathlib.Path | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    frames: int = 0
    renders: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in {"rendered", "skipped", "metadata"}


def package_dir_for(scene, shot_name: str, out_root: pathlib.Path | None = None) -> pathlib.Path:
    """``--out DIR`` → ``DIR/<shot>``; else ``<project output>/<shot>/passes`` next to the .blend."""
    if out_root is not None:
        return pathlib.Path(out_root) / shot_name
    root = project_paths.output_root(scene)
    if root is None:
        raise shot_package.PackageError(
            "Save the .blend first: the output folder is relative to it (or set an absolute output folder)."
        )
    return root / shot_name / "passes"


def _horizontal_optics(spec: ShotSpec, frame: int) -> tuple[float, float, float]:
    """(sensor width spanning the frame width, shift_x, shift_y in frame widths) for any sensor fit."""
    camera = spec.camera
    aspect = spec.width / spec.height
    vertical = camera.sensor_fit == "VERTICAL" or (camera.sensor_fit == "AUTO" and spec.height > spec.width)
    if not vertical:
        return camera.sensor_width_mm, camera.shift_x, camera.shift_y
    sensor = camera.sensor_height_mm if camera.sensor_fit == "VERTICAL" else camera.sensor_width_mm
    return sensor * aspect, camera.shift_x / aspect, camera.shift_y / aspect


def placement_at(spec: ShotSpec, frame: int) -> framing.CameraPlacement:
    sensor_width, shift_x, shift_y = _horizontal_optics(spec, frame)
    return framing.CameraPlacement(
        matrix_world=tuple(tuple(row) for row in spec.camera_matrices[str(frame)]),
        lens_mm=spec.camera_lens[str(frame)],
        sensor_width_mm=sensor_width,
        aspect=spec.width / spec.height,
        shift_x=shift_x,
        shift_y=shift_y,
    )


def projected_joints(spec: ShotSpec, frame: int) -> list[list[tuple[float, float, float]]]:
    """Every character's 18 joints as (x px, y px from the top, view depth) at ``frame``."""
    placement = placement_at(spec, frame)
    people = []
    for character in spec.characters:
        points = []
        for joint in character.joints[str(frame)]:
            u, v, depth = framing.project(tuple(joint), placement)
            points.append((u * spec.width, (1.0 - v) * spec.height, depth))
        people.append(points)
    return people


def _shot_json(spec: ShotSpec, visible: list[str], rng, raw_scale: float, renders: int) -> dict:
    data = spec.to_dict()
    characters = [
        {key: value for key, value in c.items() if key != "joints"}
        for c in data.pop("characters")
        if c["name"] in visible
    ]
    data.update(
        characters=characters,
        render_hash=spec.render_hash(),
        content_hash=spec.content_hash(),
        generation_hash=spec.generation_hash(),
        depth={"near": rng.near, "far": rng.far, "encoding": pass_images.DEPTH_ENCODING,
               "raw_metres_per_unit": raw_scale, "raw_format": "png16", "background": 0},
        canny={"low": spec.canny_low, "high": spec.canny_high, "source": "normals+depth"},
        openpose={"format": "coco18", "occlusion_tolerance_m": OCCLUSION_TOLERANCE},
        files={"pattern": "%04d.png", "folders": list(shot_package.PASS_FOLDERS) + ["mask/<character>"]},
        renders_per_frame=renders / max(1, spec.frame_end - spec.frame_start + 1),
    )
    return data


def shot_passes(scene, shot, out_root: pathlib.Path | None = None, scale: float = 1.0,
                force: bool = False) -> Generator[Progress, None, ShotPassResult]:
    """Render and write one shot's passes; yields progress, returns the result."""
    started = time.perf_counter()
    name = shot.name
    try:
        spec = scene_reader.read_shot(scene, shot, scale)
        package_dir = package_dir_for(scene, name, out_root)
    except (scene_reader.PassInputError, shot_package.PackageError) as error:
        return ShotPassResult(name, "failed", message=str(error))
    warnings = list(spec.warnings)
    state = "stale" if force else shot_package.freshness(package_dir, spec.render_hash(), spec.content_hash())
    if state == "current" and not _references_current(package_dir, spec):
        state = "metadata"  # a reference image was edited in place: copy it again, no render needed
    if state == "current":
        return ShotPassResult(name, "skipped", package_dir, "unchanged since its last passes", warnings)
    if state == "metadata":
        fresh = spec.to_dict()
        changes = {k: fresh[k] for k in ("shot", "style_prompt", "negative_prompt", "action", "set", "shot_size",
                                         "sun_direction_camera", "fps")}
        old = shot_package.read_shot_json(package_dir)
        by_name = {c["name"]: c for c in fresh["characters"]}
        changes["characters"] = [
            {k: v for k, v in by_name.get(c["name"], c).items() if k != "joints"} for c in old["characters"]
        ]
        try:
            reference_warnings = _add_references(package_dir, changes["characters"])
        except OSError as error:
            return ShotPassResult(name, "failed", message=f"{name}: {error}", warnings=warnings)
        warnings += reference_warnings
        changes["warnings"] = [w for w in old.get("warnings", []) if not _is_reference_warning(w)] + reference_warnings
        changes["content_hash"] = spec.content_hash()
        changes["generation_hash"] = spec.generation_hash()
        shot_package.update_metadata(package_dir, changes)
        return ShotPassResult(name, "metadata", package_dir, "passes unchanged; prompts updated", warnings)

    try:
        staged = shot_package.StagedPackage(package_dir)
    except shot_package.PackageError as error:
        return ShotPassResult(name, "failed", message=str(error), warnings=warnings)

    committed = False
    try:
        result = yield from _render_into(scene, shot, spec, staged, warnings)
        result.package_dir = staged.commit(result.shot_json)
        committed = True
        return ShotPassResult(name, "rendered", result.package_dir, "", warnings, result.frames,
                              result.renders, time.perf_counter() - started)
    except (RuntimeError, OSError, ValueError, shot_package.PackageError) as error:
        return ShotPassResult(name, "failed", message=f"{name}: {error}", warnings=warnings)
    finally:
        if not committed:
            staged.discard()


@dataclass
class _Rendered:
    shot_json: dict
    frames: int
    renders: int
    package_dir: pathlib.Path | None = None


def _render_into(scene, shot, spec: ShotSpec, staged: shot_package.StagedPackage, warnings: list[str]):
    frames = list(spec.frames)
    static = spec.camera_is_static()
    hidden = scene_reader.stand_in_objects(scene, spec)
    total = len(frames) * (1 if static else 2) + (1 if static else 0)
    depth_frames, depth_bg_frames = {}, {}
    seen = {c.name: False for c in spec.characters}
    renders = 0
    work_dir = staged.staging / ".render"
    with PassRenderer(scene, shot.camera, spec.width, spec.height, work_dir) as renderer:
        for frame in frames:
            buffers = renderer.render_frame(frame)
            renders += 1
            depth_frames[frame] = buffers.depth
            write_frame_passes(staged, spec, frame, buffers, seen)
            yield Progress(spec.shot, renders, total, f"frame {frame}")
            if not static or frame == frames[0]:
                background = renderer.render_frame(frame, hidden=hidden)
                renders += 1
                depth_bg_frames[frame] = background.depth
                staged.write_image("canny_bg", frame, pass_images.canny_edges(
                    background.normal, background.depth, spec.canny_low, spec.canny_high))
                yield Progress(spec.shot, renders, total, f"background {frame}")
            else:
                staged.copy_image("canny_bg", frames[0], frame)

    rng = pass_images.depth_range(list(depth_frames.values()) + list(depth_bg_frames.values()))
    raw_scale = pass_images.raw_scale_for(rng)
    for frame in frames:
        staged.write_image("depth", frame, pass_images.depth_control(depth_frames[frame], rng))
        staged.write_image("depth_raw", frame, pass_images.depth_raw(depth_frames[frame], raw_scale))
        if static and frame != frames[0]:
            staged.copy_image("depth_bg", frames[0], frame)
        else:
            staged.write_image("depth_bg", frame, pass_images.depth_control(depth_bg_frames[frame], rng))
    visible = [name for name, was_seen in seen.items() if was_seen]
    if not visible and len(scene.standin.cast):
        warnings.append(f"{spec.shot}: the camera sees no character; its passes have the set only.")
    elif not visible:
        warnings.append(f"{spec.shot}: there is no character in the scene; its passes have the set only.")
    shot_json = _shot_json(spec, visible, rng, raw_scale, renders)
    warnings += _add_references(staged.staging, shot_json["characters"])
    shot_json["warnings"] = warnings
    return _Rendered(shot_json, len(frames), renders)


def _add_references(package_dir: pathlib.Path, characters: list[dict]) -> list[str]:
    """Copy each character's reference image into ``reference/<name>.png`` and record it in its entry.

    ``reference_image`` is the absolute path scene_reader resolved; the package gets a PNG copy
    (long edge at most ``REFERENCE_MAX_EDGE``) as ``"reference"``, plus the source file's SHA-256 so
    an image edited in place is copied again. Returns warnings for images that cannot be read
    (those characters simply get no reference).
    """
    warnings = []
    for character in characters:
        character.pop("reference", None)
        character.pop("reference_sha256", None)
        name, source = character["name"], character.get("reference_image") or ""
        target = pathlib.Path(package_dir) / REFERENCE_FOLDER / f"{name}.png"
        target.unlink(missing_ok=True)  # a reference removed since the last passes
        if not source:
            continue
        if not os.path.isabs(source):
            warnings.append(f"{name}: the reference image {source} is relative to an unsaved .blend; "
                            f"save the .blend or pick the image again. The backend gets no reference.")
            continue
        try:
            data = pathlib.Path(source).read_bytes()
        except OSError as error:
            warnings.append(f"{name}: the reference image {source} cannot be read ({error.strerror or error}); "
                            f"the backend gets no reference.")
            continue
        pixels = _reference_pixels(data)
        if pixels is None:
            warnings.append(f"{name}: the reference image {source} is not an image StandIn can read "
                            f"(use PNG or JPEG); the backend gets no reference.")
            continue
        target.parent.mkdir(exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp.png")
        if not cv2.imwrite(str(temporary), pixels):
            raise OSError(f"could not write {target}: is the disk full?")
        os.replace(temporary, target)
        character["reference"] = f"{REFERENCE_FOLDER}/{name}.png"
        character["reference_sha256"] = hashlib.sha256(data).hexdigest()
    return warnings


def _is_reference_warning(message: str) -> bool:
    return ": the reference image " in message


def _reference_pixels(data: bytes) -> np.ndarray | None:
    """An image file's bytes as 8-bit BGR (alpha laid over white), long edge at most REFERENCE_MAX_EDGE."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if pixels is None or pixels.dtype not in (np.uint8, np.uint16):
        return None
    if pixels.dtype == np.uint16:
        pixels = (pixels / 257.0).round().astype(np.uint8)
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    elif pixels.shape[2] == 4:
        alpha = pixels[..., 3:].astype(np.float32) / 255
        pixels = (pixels[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    long_edge = max(pixels.shape[:2])
    if long_edge > REFERENCE_MAX_EDGE:
        scale = REFERENCE_MAX_EDGE / long_edge
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels[..., :3])


def _references_current(package_dir: pathlib.Path, spec: ShotSpec) -> bool:
    """Whether every reference copied into the package still matches its source file."""
    recorded = {c["name"]: c for c in (shot_package.read_shot_json(package_dir) or {}).get("characters", [])}
    for character in spec.characters:
        entry = recorded.get(character.name)
        if entry is None or not character.reference_image:
            continue
        try:
            digest = hashlib.sha256(pathlib.Path(character.reference_image).read_bytes()).hexdigest()
        except OSError:
            digest = None
        if digest != entry.get("reference_sha256"):
            return False
    return True


def write_frame_passes(staged, spec: ShotSpec, frame: int, buffers, seen: dict[str, bool]) -> None:
    """Everything of one frame that does not need the whole shot: edges, masks, pose."""
    staged.write_image("canny", frame, pass_images.canny_edges(
        buffers.normal, buffers.depth, spec.canny_low, spec.canny_high))
    indices = []
    for character in spec.characters:
        mask = pass_images.object_mask(buffers.object_index, character.pass_index)
        seen[character.name] = seen[character.name] or bool(mask.any())
        staged.write_image("mask", frame, mask, character=character.name)
        indices.append(character.pass_index)
    staged.write_image("mask", frame, pass_images.background_mask(buffers.object_index, indices),
                       character="_background")
    named = [
        (character.name, openpose.visible_joints(points, buffers.depth, tolerance=OCCLUSION_TOLERANCE))
        for character, points in zip(spec.characters, projected_joints(spec, frame))
    ]
    named = [(name, joints) for name, joints in named if any(j is not None for j in joints)]
    people = [joints for _name, joints in named]
    staged.write_image("openpose", frame, openpose.draw_pose(spec.height, spec.width, people))
    pose = openpose.pose_json(people, spec.width, spec.height)
    for person, (name, _joints) in zip(pose["people"], named):
        person["standin_character"] = name  # which character each skeleton is (pose editors ignore it)
    staged.write_json("pose", frame, pose)


class PassJob:
    """Render several shots' passes one step at a time (for a modal operator's timer).

    ``tick()`` advances by one render and returns False when every shot is done; ``cancel()``
    stops after the current render, discarding the unfinished shot.
    """

    def __init__(self, scene, shot_names: list[str], out_root: pathlib.Path | None = None,
                 scale: float = 1.0, force: bool = False):
        self.scene = scene
        self.pending = list(shot_names)
        self.out_root, self.scale, self.force = out_root, scale, force
        self.results: list[ShotPassResult] = []
        self.progress: Progress | None = None
        self._current = None
        self.cancelled = False

    def tick(self) -> bool:
        if self.cancelled:
            return False
        if self._current is None:
            if not self.pending:
                return False
            name = self.pending.pop(0)
            shot = self.scene.standin.shots.get(name)
            if shot is None:
                self.results.append(ShotPassResult(name, "failed", message=f"There is no shot named {name}."))
                return bool(self.pending)
            self._current = shot_passes(self.scene, shot, self.out_root, self.scale, self.force)
        try:
            self.progress = next(self._current)
        except StopIteration as finished:
            self.results.append(finished.value)
            self._current = None
        return self._current is not None or bool(self.pending)

    @property
    def busy(self) -> bool:
        """True while a shot is being rendered or waits to be."""
        return not self.cancelled and (self._current is not None or bool(self.pending))

    def cancel(self) -> None:
        if self._current is not None:
            name = self.progress.shot if self.progress else "?"
            self._current.close()  # discards the staging folder, restores the scene
            self._current = None
            self.results.append(ShotPassResult(name, "cancelled", message="cancelled"))
        self.cancelled = True
        self.pending.clear()

    def run(self) -> list[ShotPassResult]:
        while self.tick():
            pass
        return self.results
