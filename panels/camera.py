# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera panel: the active shot's framing (size, lens, sensor, angle) and move."""

import bpy

from .common import StandInPanel


class STANDIN_PT_camera(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_camera"
    bl_label = "Camera"

    @classmethod
    def poll(cls, context):
        return context.scene.standin.active_shot is not None

    def draw(self, context):
        layout = self.layout
        shot = context.scene.standin.active_shot
        layout.label(text=shot.name, icon="CAMERA_DATA")
        layout.prop(shot, "camera")
        col = layout.column(align=True)
        col.prop(shot, "shot_size")
        col.prop(shot, "lens")
        col.prop(shot, "sensor")
        col.prop(shot, "angle")
        col.prop(shot, "variant")
        layout.label(text="Subjects: " + (", ".join(s.name for s in shot.subjects) or "none"))
        col = layout.column(align=True)
        col.prop(shot, "move")
        if shot.move != "STATIC":
            col.prop(shot, "move_amount")
            col.prop(shot, "easing")
        layout.operator("standin.shot_reframe", icon="FILE_REFRESH")


classes = (STANDIN_PT_camera,)
