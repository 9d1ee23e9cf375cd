# SPDX-License-Identifier: GPL-3.0-or-later
"""Show a shot's passes in Blender: as image sequences, in the Image Editor, behind the camera."""

from __future__ import annotations

import pathlib

import bpy

from . import shot_package

_IMAGE_PREFIX = "StandIn "


def load_sequence(package_dir: pathlib.Path, shot, kind: str):
    """The pass ``kind`` of a shot as an image sequence datablock (reused and reloaded if it exists)."""
    first = pathlib.Path(package_dir) / kind / shot_package.frame_file(shot.frame_start)
    if not first.is_file():
        raise FileNotFoundError(f"{shot.name} has no {kind} pass yet: render its passes first.")
    name = f"{_IMAGE_PREFIX}{shot.name} {kind}"
    image = bpy.data.images.get(name)
    if image is None or bpy.path.abspath(image.filepath) != str(first):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(str(first), check_existing=False)
        image.name = name
    image.source = "SEQUENCE"
    image.reload()
    return image


def set_camera_background(shot, image, opacity: float = 0.5) -> None:
    """Show ``image`` (a pass sequence) behind the shot's camera view, frame-locked to the shot."""
    camera = shot.camera.data
    clear_camera_background(shot)
    background = camera.background_images.new()
    background.image = image
    background.alpha = opacity
    background.display_depth = "BACK"
    user = background.image_user
    user.frame_start = shot.frame_start
    user.frame_offset = shot.frame_start - 1
    user.frame_duration = shot.frame_end - shot.frame_start + 1
    user.use_auto_refresh = True
    camera.show_background_images = True


def clear_camera_background(shot) -> None:
    camera = shot.camera.data
    for background in list(camera.background_images):
        if background.image is not None and background.image.name.startswith(_IMAGE_PREFIX):
            camera.background_images.remove(background)
    camera.show_background_images = len(camera.background_images) > 0


def show_in_image_editor(context, image) -> bool:
    """Open ``image`` in an Image Editor of the current screen; False when there is none (headless)."""
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            return True
    return False
