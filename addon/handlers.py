# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender app handlers: keep shots honest after a file loads and after the scene changes.

A shot whose camera was deleted is marked broken (with what to do) instead of failing later;
its marker is dropped so playback does not cut to a camera that is gone.
"""

import bpy
from bpy.app.handlers import persistent

from . import shots


def check_scene(scene) -> list[str]:
    """Validate the scene's shots and re-sync its markers when anything changed."""
    data = scene.standin
    if not len(data.shots):
        return []
    before = [(s.status, s.problem) for s in data.shots]
    problems = shots.validate_shots(scene)
    if before != [(s.status, s.problem) for s in data.shots]:
        shots.sync_markers(scene)
    return problems


@persistent
def _on_load_post(*_args):
    resumed = []
    for scene in bpy.data.scenes:
        check_scene(scene)
        resumed += resume_generation(scene)
    if resumed and not bpy.app.timers.is_registered(_poll_resumed_jobs):
        bpy.app.timers.register(_poll_resumed_jobs, first_interval=0.5, persistent=True)


@persistent
def _on_load_pre(*_args):
    import sys

    generation = sys.modules.get(f"{__package__}.generation")
    if generation is not None:
        generation.abandon_everything()


def resume_generation(scene) -> list[str]:
    """Jobs in flight when the file was saved: pick them up again by id (or mark them lost)."""
    if not any(s.generation in ("QUEUED", "RUNNING") for s in scene.standin.shots):
        return []
    from . import generation

    return generation.resume_pending(scene)


def _poll_resumed_jobs():
    from . import generation

    return 0.5 if generation.apply_worker_updates() else None


@persistent
def _on_depsgraph_update_post(scene, _depsgraph=None):
    # Cheap: only pointer checks; writes only when a shot's state really changes.
    if any(s.status == "BROKEN" or shots.camera_problem(scene, s) for s in scene.standin.shots):
        check_scene(scene)


_HANDLERS = (
    (bpy.app.handlers.load_pre, _on_load_pre),
    (bpy.app.handlers.load_post, _on_load_post),
    (bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update_post),
)


def register():
    for handler_list, function in _HANDLERS:
        if function not in handler_list:
            handler_list.append(function)


def unregister():
    for handler_list, function in _HANDLERS:
        if function in handler_list:
            handler_list.remove(function)
    if bpy.app.timers.is_registered(_poll_resumed_jobs):
        bpy.app.timers.unregister(_poll_resumed_jobs)
    # Blender closes or the add-on is disabled: stop our threads and the local backend we started.
    import sys

    if f"{__package__}.generation" in sys.modules:
        sys.modules[f"{__package__}.generation"].close_workers()
    if f"{__package__}.local_backend" in sys.modules:
        sys.modules[f"{__package__}.local_backend"].shared().stop()
    from . import take_display

    take_display.unregister()
