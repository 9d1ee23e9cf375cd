# SPDX-License-Identifier: GPL-3.0-or-later
"""A quick look through a shot's camera: a Workbench still in the stand-ins' colours.

Workbench renders headless (software OpenGL); the viewport playblast needs a window.
"""

import pathlib

from . import shots


def render_shot_still(scene, shot, path: pathlib.Path, width: int = 960, frame: int | None = None) -> pathlib.Path:
    """Render the shot's camera at ``frame`` (default: its middle) to a PNG; returns the path.

    The render settings are restored afterwards, so the scene is left as it was.
    """
    problem = shots.camera_problem(scene, shot)
    if problem:
        raise shots.ShotError(problem)
    render = scene.render
    saved = dict(engine=render.engine, filepath=render.filepath, percentage=render.resolution_percentage,
                 camera=scene.camera, frame=scene.frame_current, file_format=render.image_settings.file_format)
    try:
        render.engine = "BLENDER_WORKBENCH"
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_shadows = True
        shading.show_cavity = True
        render.resolution_percentage = max(1, min(100, round(100 * width / render.resolution_x)))
        render.image_settings.file_format = "PNG"
        render.filepath = str(path)
        scene.camera = shot.camera
        scene.frame_set(frame if frame is not None else (shot.frame_start + shot.frame_end) // 2)
        scene.camera = shot.camera
        import bpy

        bpy.ops.render.render(write_still=True)
    finally:
        render.engine = saved["engine"]
        render.filepath = saved["filepath"]
        render.resolution_percentage = saved["percentage"]
        render.image_settings.file_format = saved["file_format"]
        scene.frame_set(saved["frame"])
        scene.camera = saved["camera"]
    return pathlib.Path(path)
