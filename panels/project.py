# SPDX-License-Identifier: GPL-3.0-or-later
"""Project panel: picture format, prompts, backend and output folder."""

import bpy

from .common import StandInPanel


class STANDIN_PT_project(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_project"
    bl_label = "Project"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        data = scene.standin
        if data.data_version == 0:
            box = layout.box()
            box.label(text="This scene has no StandIn project yet.", icon="INFO")
            box.operator("standin.project_setup", icon="PLAY")
            box.operator("standin.demo_build", icon="SCENE_DATA")
            return
        project = data.project
        col = layout.column(align=True)
        col.prop(project, "aspect")
        col.prop(project, "resolution")
        col.label(text=f"{scene.render.resolution_x} × {scene.render.resolution_y} px")
        col.prop(project, "fps")
        layout.prop(project, "style_prompt")
        layout.prop(project, "negative_prompt")
        col = layout.column(align=True)
        col.prop(project, "backend_url")
        col.prop(project, "backend_token")
        layout.prop(project, "output_dir")
        layout.operator("standin.shots_check", icon="CHECKMARK")


classes = (STANDIN_PT_project,)
