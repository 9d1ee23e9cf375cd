# SPDX-License-Identifier: GPL-3.0-or-later
"""Show a shot's active take in Blender: behind its camera view, in the Image Editor, as a thumbnail."""

from __future__ import annotations

import pathlib

import bpy

from . import pass_display, project_paths, takes

_IMAGE_PREFIX = "StandIn take "
_previews = None


def image_name(shot_name: str) -> str:
    return f"{_IMAGE_PREFIX}{shot_name}"


def take_folder(take) -> pathlib.Path:
    return pathlib.Path(bpy.path.abspath(take.folder))


def _frames_of(take) -> dict[int, pathlib.Path]:
    folder = take_folder(take)
    return takes.frame_files(folder) if folder.is_dir() else {}


def load_take_image(shot):
    """The active take as an image datablock: a still, or a sequence frame-locked to the shot."""
    take = shot.active_take
    if take is None:
        return None
    frames = _frames_of(take)
    if not frames:
        raise FileNotFoundError(f"{shot.name} {take.name}: its folder {take.folder} has no frames any more.")
    first_frame, first_path = next(iter(frames.items()))
    name = image_name(shot.name)
    image = bpy.data.images.get(name)
    wanted = project_paths.blend_relative(first_path)
    if image is None or image.filepath != wanted:
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(str(first_path), check_existing=False)
        image.name = name
        image.filepath = wanted
    image.source = "SEQUENCE" if len(frames) > 1 else "FILE"
    image.reload()
    image["standin_first_frame"] = first_frame
    return image


def _background_of(camera_data):
    for background in camera_data.background_images:
        if background.image is not None and background.image.name.startswith(_IMAGE_PREFIX):
            return background
    return None


def show(scene, shot, context=None) -> None:
    """Make the active take the shot camera's background and open it in an Image Editor if one is open."""
    try:
        image = load_take_image(shot)
    except (FileNotFoundError, RuntimeError):
        image = None
    if image is None:
        clear(shot)
        return
    if shot.camera is not None:
        camera = shot.camera.data
        background = _background_of(camera) or camera.background_images.new()
        background.image = image
        background.alpha = scene.standin.project.take_opacity
        background.display_depth = "BACK"
        background.frame_method = "FIT"
        user = background.image_user
        user.frame_start = int(image.get("standin_first_frame", shot.frame_start))
        user.frame_offset = user.frame_start - 1
        user.frame_duration = max(1, shot.duration)
        user.use_auto_refresh = True
        camera.show_background_images = True
    pass_display.show_in_image_editor(context or bpy.context, image)
    _thumbnail(shot.active_take.folder, pathlib.Path(bpy.path.abspath(image.filepath)), reload=True)


def clear(shot) -> None:
    if shot.camera is None:
        return
    camera = shot.camera.data
    for background in list(camera.background_images):
        if background.image is not None and background.image.name.startswith(_IMAGE_PREFIX):
            camera.background_images.remove(background)
    camera.show_background_images = len(camera.background_images) > 0


def set_opacity(scene, opacity: float) -> None:
    for shot in scene.standin.shots:
        if shot.camera is not None and (background := _background_of(shot.camera.data)) is not None:
            background.alpha = opacity


_thumbnail_of_folder: dict[str, int] = {}


def thumbnail_icon(shot) -> int:
    """Icon id of the active take's first frame for the shot list (0 when there is none).

    Called on every redraw of the list: the folder is listed once, then the icon comes from a cache.
    """
    take = shot.active_take
    if take is None:
        return 0
    if take.folder in _thumbnail_of_folder:
        return _thumbnail_of_folder[take.folder]
    frames = _frames_of(take)
    return _thumbnail(take.folder, next(iter(frames.values())) if frames else None)


def _thumbnail(folder_key: str, first_frame: pathlib.Path | None, reload: bool = False) -> int:
    """Load (or reload) the preview of ``first_frame`` and remember it for the take folder."""
    global _previews
    if first_frame is None:
        _thumbnail_of_folder[folder_key] = 0
        return 0
    if _previews is None:
        import bpy.utils.previews

        _previews = bpy.utils.previews.new()
    key = str(first_frame)
    if key in _previews and reload:
        _previews[key].reload()
    icon = _previews.get(key) or _previews.load(key, key, "IMAGE")
    _thumbnail_of_folder[folder_key] = icon.icon_id
    return icon.icon_id


def unregister() -> None:
    global _previews
    if _previews is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_previews)
        _previews = None
    _thumbnail_of_folder.clear()
