# SPDX-License-Identifier: GPL-3.0-or-later
"""What every StandIn operator shares: turning a user-facing error into a report."""

import functools
import threading

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


def poll_has_shots(cls, context) -> bool:
    """For ``poll``: the scene has shots (else the poll message says where to add one)."""
    if not len(context.scene.standin.shots):
        cls.poll_message_set("There are no shots: add one in the Shots panel")
        return False
    return True


class ModalJob:
    """A long job driven one step per timer event: progress bar, status text, Esc cancels.

    Blender stays usable: every other event passes through. By default the job is ``self._job`` with
    ``tick() -> bool``, ``progress`` (shot, done, total, stage) and ``cancel()`` (PassJob, AnimaticJob);
    a subclass may override ``_job_step``, ``_job_progress`` and ``_job_cancel``, and implements
    ``_job_finish(context) -> {"FINISHED"} | {"CANCELLED"}``. After Esc the job keeps being stepped
    until it says it is done (so it can clean up).
    """

    timer_interval = 0.01
    _timer = None
    _job = None

    def _job_step(self, context) -> bool:
        return self._job.tick()

    def _job_progress(self, context):
        progress = self._job.progress
        if progress is None:
            return None
        return progress.done, progress.total, f"{progress.shot} {progress.done}/{progress.total} ({progress.stage})"

    def _job_cancel(self, context) -> None:
        self._job.cancel()

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


class BackgroundCall:
    """An operator whose work is one blocking call (network, a child process) run off the main thread.

    ``invoke`` runs ``_work()`` on a thread and waits for it with a timer, Blender staying usable;
    ``execute`` (scripts) runs it in place. ``_work`` returns what ``_done(context, outcome)`` reports.
    """

    _thread = None
    _outcome = None
    _timer = None
    busy_text = ""

    def _work(self, context_values):
        raise NotImplementedError

    def _context_values(self, context):
        """What ``_work`` needs from ``context``, read on the main thread (bpy is not thread-safe)."""
        return None

    def execute(self, context):
        return self._done(context, self._work(self._context_values(context)))

    def invoke(self, context, event):
        values = self._context_values(context)

        def run():
            self._outcome = self._work(values)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        if self.busy_text:
            context.workspace.status_text_set(self.busy_text)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER" or self._thread.is_alive():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        if self.busy_text:
            context.workspace.status_text_set(None)
        return self._done(context, self._outcome)
