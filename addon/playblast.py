# SPDX-License-Identifier: GPL-3.0-or-later
"""A fast playblast of a shot's blocking, in the stand-ins' colours, as numbered JPEGs.

With a window (Blender's UI) each frame is the viewport's own draw through the shot camera
(``render.opengl``, the fast path); headless (the CLI, tests, a render farm) it is a Workbench
render, solid shading in the material colours (stand-ins in their cast colour, set pieces grey),
no anti-aliasing: a playblast, not a final frame. Frames are rendered into a hidden staging
folder and renamed into place when the shot is complete, so a cancelled playblast never looks
like a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import uuid

import bpy
import numpy as np

from . import shots
from .edit_list import PLAYBLAST_SUFFIX

#: Bumped when the look of a playblast changes, so cached ones are rendered again.
PLAYBLAST_VERSION = 2
#: Playblast frames are JPEGs (``edit_list.PLAYBLAST_SUFFIX``): half a PNG's cost to write.
FRAME_SUFFIX = PLAYBLAST_SUFFIX
JPEG_QUALITY = 90
STAGING_PREFIX = ".staging-"


class PlayblastError(Exception):
    """A shot cannot be playblasted; the message says what to do."""


_DRAWN = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME", "GREASEPENCIL"}
_DIGITS = 5


def _rounded(values) -> bytes:
    return np.round(np.asarray(values, dtype=np.float64), _DIGITS).tobytes()


def _mesh_digest(mesh, cache: dict) -> bytes:
    if mesh.name_full not in cache:
        coords = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", coords)
        cache[mesh.name_full] = hashlib.sha1(_rounded(coords) + str(len(mesh.polygons)).encode()).digest()
    return cache[mesh.name_full]


def blocking_key(scene, shot) -> str:
    """Hash of what a playblast of ``shot`` shows: per frame, the camera (matrix and lens) and every
    drawn object's transform and pose; once, the meshes, modifiers, colours and world. Raises
    PlayblastError when the shot cannot be playblasted (no camera, empty range)."""
    problem = shots.camera_problem(scene, shot)
    if problem:
        raise PlayblastError(problem)
    if shot.frame_end < shot.frame_start:
        raise PlayblastError(f"{shot.name} ends before it starts: fix its frame range.")
    camera = shot.camera
    drawn = sorted((o for o in scene.objects if not o.hide_render and (o.type in _DRAWN or o.type == "ARMATURE")),
                   key=lambda o: o.name_full)
    digest = hashlib.sha256()
    keyed = {
        "version": PLAYBLAST_VERSION,
        "camera": [camera.data.sensor_fit, camera.data.sensor_width, camera.data.sensor_height,
                   camera.data.shift_x, camera.data.shift_y, camera.data.clip_start, camera.data.clip_end,
                   camera.data.type, camera.data.ortho_scale],
        "objects": [(o.name_full, o.type, [m.type for m in getattr(o, "modifiers", ()) if m.show_render],
                     [round(c, 4) for c in o.color]) for o in drawn],
        "materials": sorted((m.name_full, [round(c, 4) for c in m.diffuse_color])
                            for m in bpy.data.materials if m.users),
        "world": [round(c, 4) for c in scene.world.color] if scene.world is not None else None,
        "range": [shot.frame_start, shot.frame_end],
    }
    digest.update(json.dumps(keyed, sort_keys=True).encode())
    meshes: dict = {}
    for obj in drawn:
        if obj.type == "MESH":
            digest.update(_mesh_digest(obj.data, meshes))
    armatures = [o for o in drawn if o.type == "ARMATURE"]
    current = scene.frame_current
    try:
        for frame in range(shot.frame_start, shot.frame_end + 1):
            scene.frame_set(frame)
            digest.update(_rounded(camera.matrix_world) + _rounded(camera.data.lens))
            digest.update(_rounded([o.matrix_world for o in drawn]))
            for armature in armatures:
                bones = armature.pose.bones
                matrices = np.empty(len(bones) * 16, np.float32)
                bones.foreach_get("matrix", matrices)
                digest.update(_rounded(matrices))
    finally:
        scene.frame_set(current)
    return digest.hexdigest()


def viewport_override(context=None) -> dict | None:
    """A window/area/region to draw a viewport playblast in, or None when Blender has no window."""
    if bpy.app.background:  # the bpy module and `blender -b` have no GPU context to draw in
        return None
    context = context or bpy.context
    window_manager = getattr(context, "window_manager", None)
    for window in getattr(window_manager, "windows", ()) or ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                region = next((r for r in area.regions if r.type == "WINDOW"), None)
                if region is not None:
                    return {"window": window, "area": area, "region": region}
    return None


class Playblaster:
    """Set ``scene`` up for playblast frames; restores every setting it touched on ``close``."""

    def __init__(self, scene, width: int, height: int, use_viewport: bool | None = None):
        self.scene = scene
        self.override = viewport_override() if use_viewport in (None, True) else None
        if use_viewport and self.override is None:
            raise PlayblastError("The viewport playblast needs Blender's window; use the Workbench render headless.")
        render, display = scene.render, scene.display
        shading = display.shading
        self._saved = {
            (render, "engine"): render.engine, (render, "filepath"): render.filepath,
            (render, "resolution_x"): render.resolution_x, (render, "resolution_y"): render.resolution_y,
            (render, "resolution_percentage"): render.resolution_percentage,
            (render, "use_stamp"): render.use_stamp, (render, "film_transparent"): render.film_transparent,
            (render.image_settings, "file_format"): render.image_settings.file_format,
            (render.image_settings, "color_mode"): render.image_settings.color_mode,
            (render.image_settings, "quality"): render.image_settings.quality,
            (scene, "camera"): scene.camera, (scene, "frame_current"): scene.frame_current,
            (display, "render_aa"): display.render_aa,
            (shading, "light"): shading.light, (shading, "color_type"): shading.color_type,
            (shading, "show_shadows"): shading.show_shadows, (shading, "show_cavity"): shading.show_cavity,
            (scene.view_settings, "view_transform"): scene.view_settings.view_transform,
            (scene.view_settings, "look"): scene.view_settings.look,
        }
        if hasattr(render.image_settings, "media_type"):  # Blender 5: set before file_format
            self._saved = {(render.image_settings, "media_type"): render.image_settings.media_type, **self._saved}
            render.image_settings.media_type = "IMAGE"
        render.engine = "BLENDER_WORKBENCH"
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.use_stamp = False
        render.film_transparent = False
        render.image_settings.file_format = "JPEG"
        render.image_settings.color_mode = "RGB"
        render.image_settings.quality = JPEG_QUALITY
        display.render_aa = "OFF"
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_shadows = False
        shading.show_cavity = False
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"

    @property
    def uses_viewport(self) -> bool:
        return self.override is not None

    def render_frame(self, camera, frame: int, path: pathlib.Path) -> None:
        scene = self.scene
        scene.frame_set(frame)
        scene.camera = camera
        scene.render.filepath = str(path)
        if self.override is not None:
            with bpy.context.temp_override(**self.override):
                bpy.ops.render.opengl(write_still=True, view_context=False)
        else:
            bpy.ops.render.render(write_still=True, scene=scene.name)
        if not pathlib.Path(path).is_file():
            raise PlayblastError(f"Blender wrote no picture for frame {frame} ({path}).")

    def close(self) -> None:
        saved, self._saved = self._saved, {}
        for (owner, name), value in saved.items():
            try:
                setattr(owner, name, value)
            except (AttributeError, TypeError, ValueError):
                pass
        if (self.scene, "frame_current") in saved:
            self.scene.frame_set(saved[(self.scene, "frame_current")])

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()
        return False


def shot_frames(scene, shot, folder: pathlib.Path, width: int, height: int, use_viewport: bool | None = None):
    """Render ``shot``'s frames into ``folder`` (``0001.png``… by scene frame): a generator that
    yields after each frame and returns the folder. Frames go into a staging folder beside it that
    is renamed into place at the end; closing the generator early discards it."""
    problem = shots.camera_problem(scene, shot)
    if problem:
        raise PlayblastError(problem)
    folder = pathlib.Path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f"{STAGING_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as error:
        raise PlayblastError(f"Cannot write the playblast into {folder.parent} ({error.strerror or error}): "
                             f"pick an output folder you can write to.") from error
    done = False
    playblaster = None
    try:
        playblaster = Playblaster(scene, width, height, use_viewport)
        for frame in range(shot.frame_start, shot.frame_end + 1):
            playblaster.render_frame(shot.camera, frame, staging / f"{frame:04d}{FRAME_SUFFIX}")
            yield frame
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(staging, folder)
        done = True
        return folder
    finally:
        if playblaster is not None:
            playblaster.close()
        if not done:
            shutil.rmtree(staging, ignore_errors=True)
