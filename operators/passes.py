# SPDX-License-Identifier: GPL-3.0-or-later
"""Render passes: one shot or all, with a progress bar that Esc cancels; show a pass in Blender."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty

from ..addon import pass_display, pass_pipeline, shots
from ..addon.properties import BACKGROUND_PASSES
from .common import ModalJob, poll_has_shots, reports_errors


def _report_results(operator, results) -> None:
    for result in results:
        for warning in result.warnings:
            operator.report({"WARNING"}, warning)
        if result.status == "failed":
            operator.report({"ERROR"}, result.message)
    done = [r for r in results if r.ok]
    rendered = [r for r in results if r.status == "rendered"]
    operator.report({"INFO"}, f"Passes: {len(rendered)} rendered, {len(done) - len(rendered)} unchanged, "
                              f"{len(results) - len(done)} not done")


def _show_active(context) -> None:
    """After a run: the active shot's depth pass in the Image Editor, and its chosen background."""
    scene = context.scene
    shot = scene.standin.active_shot
    if shot is None or shots.camera_problem(scene, shot):
        return
    try:
        package = pass_pipeline.package_dir_for(scene, shot.name)
        image = pass_display.load_sequence(package, shot, "depth")
    except (FileNotFoundError, OSError, RuntimeError):
        return
    pass_display.show_in_image_editor(context, image)
    if shot.background_pass != "NONE":
        pass_display.set_camera_background(shot, pass_display.load_sequence(package, shot, shot.background_pass))


class STANDIN_OT_passes_render(ModalJob, bpy.types.Operator):
    """Render the control passes (depth, edges, OpenPose, masks) of the active shot or of every shot.
    Shots whose inputs did not change are skipped. Esc cancels"""

    bl_idname = "standin.passes_render"
    bl_label = "Render Passes"
    bl_options = {"REGISTER", "UNDO"}

    all_shots: BoolProperty(name="All shots", default=False)
    scale: FloatProperty(name="Scale", default=1.0, min=0.05, max=4.0,
                         description="Pass size against the project resolution")
    force: BoolProperty(name="Force", default=False, description="Render even unchanged shots")

    @classmethod
    def poll(cls, context):
        data = context.scene.standin
        if not poll_has_shots(cls, context):
            return False
        if data.active_shot is None:
            cls.poll_message_set("No shot is selected in the shot list")
            return False
        return True

    def _names(self, context) -> list[str]:
        data = context.scene.standin
        return [s.name for s in data.shots] if self.all_shots else [data.active_shot.name]

    @reports_errors
    def execute(self, context):
        """Scripts and the CLI: render synchronously."""
        job = pass_pipeline.PassJob(context.scene, self._names(context), scale=self.scale, force=self.force)
        results = job.run()
        _report_results(self, results)
        _show_active(context)
        return {"FINISHED"} if all(r.ok for r in results) else {"CANCELLED"}

    def invoke(self, context, event):
        self._job = pass_pipeline.PassJob(context.scene, self._names(context), scale=self.scale, force=self.force)
        return self.start_modal(context)

    def _job_finish(self, context):
        _report_results(self, self._job.results)
        if self._job.cancelled:
            return {"CANCELLED"}
        _show_active(context)
        return {"FINISHED"}


class STANDIN_OT_passes_show(bpy.types.Operator):
    """Show one of the active shot's passes behind its camera view and in the Image Editor"""

    bl_idname = "standin.passes_show"
    bl_label = "Show Pass"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="Pass", items=BACKGROUND_PASSES, default="depth")

    @classmethod
    def poll(cls, context):
        shot = context.scene.standin.active_shot
        if shot is None or shots.camera_problem(context.scene, shot):
            cls.poll_message_set("Select a shot with a camera in the shot list")
            return False
        return True

    @reports_errors
    def execute(self, context):
        scene = context.scene
        shot = scene.standin.active_shot
        shot.background_pass = self.kind
        if self.kind == "NONE":
            pass_display.clear_camera_background(shot)
            return {"FINISHED"}
        package = pass_pipeline.package_dir_for(scene, shot.name)
        try:
            image = pass_display.load_sequence(package, shot, self.kind)
        except FileNotFoundError as error:
            raise ValueError(str(error)) from error
        pass_display.set_camera_background(shot, image)
        pass_display.show_in_image_editor(context, image)
        return {"FINISHED"}


classes = (STANDIN_OT_passes_render, STANDIN_OT_passes_show)
