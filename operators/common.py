# SPDX-License-Identifier: GPL-3.0-or-later
"""What every StandIn operator shares: turning a user-facing error into a report."""

import functools

from ..addon.properties import ensure_project
from ..addon.shots import ShotError

#: Errors whose message is written for the user; anything else is a bug and keeps its traceback.
USER_ERRORS = (ShotError, ValueError)


def reports_errors(execute):
    """Wrap ``execute`` so a user error becomes one ERROR report and a cancelled operator."""

    @functools.wraps(execute)
    def wrapper(self, context):
        ensure_project(context.scene)
        try:
            return execute(self, context)
        except USER_ERRORS as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    return wrapper


def selected_stand_ins(context):
    """Armatures among the selected objects that are StandIn stand-ins, active one first."""
    from ..addon import rig

    selected = [o for o in (context.selected_objects or []) if rig.is_stand_in(o)]
    active = context.active_object
    if active in selected:
        selected.remove(active)
        selected.insert(0, active)
    return selected


def character_of(scene, stand_in):
    """The cast entry driven by a stand-in, or None."""
    for character in scene.standin.cast:
        if character.stand_in == stand_in:
            return character
    return None


class ModalJob:
    """A long job driven one step per timer event: progress bar, status text, Esc cancels.

    Blender stays usable: every other event passes through. A subclass implements
    ``_job_step(context) -> bool`` (False when done), ``_job_progress(context) -> (done, total, text)``
    or None, ``_job_cancel(context)`` and ``_job_finish(context) -> {"FINISHED"} | {"CANCELLED"}``;
    after Esc the job keeps being stepped until it says it is done (so it can clean up).
    """

    timer_interval = 0.01
    _timer = None

    def start_modal(self, context):
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(self.timer_interval, window=context.window)
        window_manager.progress_begin(0, 1000)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job_cancel(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            more = self._job_step(context)
        except Exception as error:  # never leave a dead modal handler and progress bar behind
            self._job_cancel(context)
            self.report({"ERROR"}, f"{self.bl_label} stopped: {error}")
            self._end_modal(context)
            return {"CANCELLED"}
        progress = self._job_progress(context)
        if progress is not None:
            done, total, text = progress
            context.window_manager.progress_update(int(1000 * done / max(1, total)))
            context.workspace.status_text_set(f"StandIn {self.bl_label}: {text} — Esc cancels")
        if more:
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._job_finish(context)

    def _end_modal(self, context) -> None:
        window_manager = context.window_manager
        window_manager.event_timer_remove(self._timer)
        window_manager.progress_end()
        context.workspace.status_text_set(None)
