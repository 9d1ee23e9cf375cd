# SPDX-License-Identifier: GPL-3.0-or-later
"""Project-level operators: start StandIn on a scene, check its shots, build the demo scene."""

import bpy

from ..addon import handlers
from ..addon.properties import ensure_project
from .common import reports_errors


class STANDIN_OT_project_setup(bpy.types.Operator):
    """Start StandIn on this scene: apply the project's aspect, resolution and frame rate"""

    bl_idname = "standin.project_setup"
    bl_label = "Set Up StandIn Project"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        data = ensure_project(context.scene)
        from ..addon.properties import apply_picture_format

        apply_picture_format(context.scene)
        self.report({"INFO"}, f"StandIn project ready: {context.scene.render.resolution_x}×"
                    f"{context.scene.render.resolution_y} at {data.project.fps} fps")
        return {"FINISHED"}


class STANDIN_OT_shots_check(bpy.types.Operator):
    """Check every shot (camera present, unique name, valid range) and mark the broken ones"""

    bl_idname = "standin.shots_check"
    bl_label = "Check Shots"
    bl_options = {"REGISTER", "UNDO"}

    @reports_errors
    def execute(self, context):
        problems = handlers.check_scene(context.scene)
        for problem in problems:
            self.report({"WARNING"}, problem)
        if not problems:
            self.report({"INFO"}, f"All {len(context.scene.standin.shots)} shots are fine")
        return {"FINISHED"}


class STANDIN_OT_demo_build(bpy.types.Operator):
    """Build the StandIn sample scene (two characters, a room, three shots) into this scene"""

    bl_idname = "standin.demo_build"
    bl_label = "Build Demo Scene"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if len(context.scene.standin.cast) or len(context.scene.standin.shots):
            cls.poll_message_set("The demo needs a scene without StandIn characters or shots: add a new scene first")
            return False
        return True

    @reports_errors
    def execute(self, context):
        from ..addon import demo

        summary = demo.build_demo(context.scene)
        self.report({"INFO"}, summary.headline())
        return {"FINISHED"}


classes = (STANDIN_OT_project_setup, STANDIN_OT_shots_check, STANDIN_OT_demo_build)
