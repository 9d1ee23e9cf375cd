# SPDX-License-Identifier: GPL-3.0-or-later
"""Animatic: build the "StandIn Edit" and its MP4, export the storyboard sheet and the cut as OTIO.

Each runs as a modal job from the UI (progress in the status bar, Esc cancels between frames) and
synchronously from scripts (``execute``); the work itself is ``addon.animatic``.
"""

from __future__ import annotations

import pathlib

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ..addon import animatic
from .common import ModalJob, poll_has_shots, reports_errors

#: The scene's custom property holding the last animatic's path (the panel shows it).
LAST_ANIMATIC = "standin_animatic"
_MAX_REPORTED_PROBLEMS = 12


class _AnimaticJobOperator(ModalJob):
    """What the three share: run an ``AnimaticJob`` (modal with a timer, or all at once) and report."""

    encode = True

    scale: FloatProperty(name="Scale", default=animatic.DEFAULT_SCALE, min=0.05, max=1.0,
                         description="Size of the animatic's pictures against the project resolution")
    filepath: StringProperty(name="File", subtype="FILE_PATH",
                             description="Where to write it (empty: the project output folder)")

    def _target(self, context, name: str) -> pathlib.Path:
        if self.filepath:
            return pathlib.Path(bpy.path.abspath(self.filepath))
        return animatic.default_path(context.scene, name)

    def _new_job(self, context) -> animatic.AnimaticJob:
        return animatic.AnimaticJob(context.scene, self._out(context) if self.encode else None, self.scale,
                                    encode=self.encode)

    def _out(self, context):
        return None

    def _report_result(self, result: animatic.AnimaticResult) -> None:
        for problem in result.problems[:_MAX_REPORTED_PROBLEMS]:
            self.report({"WARNING"}, problem)
        if len(result.problems) > _MAX_REPORTED_PROBLEMS:
            self.report({"WARNING"}, f"…and {len(result.problems) - _MAX_REPORTED_PROBLEMS} more problems.")
        if not result.ok:
            self.report({"ERROR"} if result.status == "failed" else {"INFO"}, result.message)

    def _finish_job(self, context, result: animatic.AnimaticResult) -> set[str]:
        self._report_result(result)
        if not result.ok:
            return {"CANCELLED"}
        try:
            return self._done(context, result)
        except (animatic.AnimaticError, OSError, ImportError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    @reports_errors
    def execute(self, context):
        """Scripts and the CLI: all at once."""
        return self._finish_job(context, self._new_job(context).run())

    def invoke(self, context, event):
        self._job = self._new_job(context)
        return self.start_modal(context)

    def _job_finish(self, context):
        return self._finish_job(context, self._job.result)


class STANDIN_OT_animatic_build(_AnimaticJobOperator, bpy.types.Operator):
    """Build the animatic: every shot in order at its length (its take, else a playblast of the
    blocking), with the scene's sound and burn-ins, into the "StandIn Edit" scene and an MP4.
    Only shots that changed are rendered again. Esc cancels"""

    bl_idname = "standin.animatic_build"
    bl_label = "Build Animatic"
    bl_options = {"REGISTER", "UNDO"}

    poll = classmethod(poll_has_shots)

    def _out(self, context):
        return self._target(context, "animatic.mp4")

    def _done(self, context, result):
        context.scene[LAST_ANIMATIC] = str(result.path)
        edit = result.edit
        self.report({"INFO"}, f"Animatic: {len(edit.events)} shots, {edit.running_time} → {result.path} "
                              f"({len(result.playblasts_rendered)} playblasts and {len(result.segments_encoded)} "
                              f"shots rendered, the rest unchanged; the edit is the scene '{animatic.EDIT_SCENE}')")
        return {"FINISHED"}


class STANDIN_OT_animatic_board(_AnimaticJobOperator, bpy.types.Operator):
    """Export the storyboard sheet: a PDF with a panel per shot (picture, name, size, lens, duration,
    action, notes) and a PNG contact sheet beside it"""

    not_undoable = "it writes a PDF and a PNG next to the .blend; the scene does not change"
    bl_idname = "standin.animatic_board"
    bl_label = "Export Board"
    bl_options = {"REGISTER"}
    encode = False

    poll = classmethod(poll_has_shots)

    def _done(self, context, result):
        from ..addon.board import BoardError

        pdf = self._target(context, "board.pdf")
        try:
            written = animatic.export_board(context.scene, result.edit, pdf, pdf.with_suffix(".png"))
        except BoardError as error:
            self.report({"ERROR"}, str(error))
            if pdf.with_suffix(".png").is_file():
                self.report({"INFO"}, f"Contact sheet: {pdf.with_suffix('.png')}")
            return {"CANCELLED"}
        self.report({"INFO"}, "Board: " + ", ".join(str(p) for p in written))
        return {"FINISHED"}


class STANDIN_OT_animatic_otio(_AnimaticJobOperator, bpy.types.Operator):
    """Export the cut for an editor: an OpenTimelineIO timeline with a clip per shot (its media and
    StandIn metadata: seed, prompts, LoRAs, lens, take) and the sound, plus a CMX 3600 EDL"""

    not_undoable = "it writes the OTIO (and EDL) file; the scene does not change"
    bl_idname = "standin.animatic_otio"
    bl_label = "Export OTIO"
    bl_options = {"REGISTER"}
    encode = False

    poll = classmethod(poll_has_shots)

    def _done(self, context, result):
        from ..addon.otio_export import OtioError

        try:
            path, edl, notes = animatic.export_otio(context.scene, result.edit, self._target(context, "cut.otio"))
        except OtioError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"OTIO: {path}" + (f", EDL: {edl}" if edl else ""))
        return {"FINISHED"}


class STANDIN_OT_animatic_play(bpy.types.Operator):
    """Watch the last animatic: in your movie player, or as the "StandIn Edit" scene in this window"""

    bl_idname = "standin.animatic_play"
    bl_label = "Play Animatic"
    not_undoable = "it only opens the movie or switches the window to the edit; the scenes do not change"

    where: EnumProperty(name="Where", default="PLAYER", items=(
        ("PLAYER", "Movie player", "Open animatic.mp4 with the system's movie player"),
        ("EDIT", "Edit scene", "Show the 'StandIn Edit' scene in this window (its sequencer holds the cut)"),
    ))

    @classmethod
    def poll(cls, context):
        last = context.scene.get(LAST_ANIMATIC)
        if not last or not pathlib.Path(last).is_file():
            cls.poll_message_set("Build the animatic first")
            return False
        return True

    def execute(self, context):
        if self.where == "PLAYER":
            return bpy.ops.wm.path_open(filepath=context.scene[LAST_ANIMATIC])
        edit = bpy.data.scenes.get(animatic.EDIT_SCENE)
        if edit is None:
            self.report({"ERROR"}, f"There is no '{animatic.EDIT_SCENE}' scene any more: build the animatic again.")
            return {"CANCELLED"}
        if context.window is None:
            self.report({"ERROR"}, "There is no window to show the edit in.")
            return {"CANCELLED"}
        context.window.scene = edit
        return {"FINISHED"}


classes = (STANDIN_OT_animatic_build, STANDIN_OT_animatic_board, STANDIN_OT_animatic_otio, STANDIN_OT_animatic_play)
