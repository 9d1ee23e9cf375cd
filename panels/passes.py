# SPDX-License-Identifier: GPL-3.0-or-later
"""Passes panel: render the control passes of the active shot or all shots, and show one."""

import bpy

from .common import StandInPanel


class STANDIN_PT_passes(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_passes"
    bl_label = "Passes"

    @classmethod
    def poll(cls, context):
        return len(context.scene.standin.shots) > 0

    def draw(self, context):
        layout = self.layout
        data = context.scene.standin
        row = layout.row(align=True)
        row.operator("standin.passes_render", text="Render Passes", icon="RENDER_STILL").all_shots = False
        row.operator("standin.passes_render", text="All Shots", icon="RENDER_ANIMATION").all_shots = True
        col = layout.column(align=True)
        col.prop(data.project, "canny_low")
        col.prop(data.project, "canny_high")
        shot = data.active_shot
        if shot is not None:
            layout.label(text=f"Behind {shot.name}'s camera:")
            row = layout.row(align=True)
            for key, label in (("NONE", "None"), ("depth", "Depth"), ("openpose", "Pose"), ("canny", "Edges")):
                row.operator("standin.passes_show", text=label, depress=shot.background_pass == key).kind = key


classes = (STANDIN_PT_passes,)
