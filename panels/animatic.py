# SPDX-License-Identifier: GPL-3.0-or-later
"""Animatic panel: build the animatic, export the board and the cut."""

import os

import bpy

from .common import StandInPanel


class STANDIN_PT_animatic(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_animatic"
    bl_label = "Animatic"

    @classmethod
    def poll(cls, context):
        return len(context.scene.standin.shots) > 0

    def draw(self, context):
        from ..operators.animatic import LAST_ANIMATIC

        layout = self.layout
        layout.operator("standin.animatic_build", icon="SEQUENCE")
        row = layout.row(align=True)
        row.operator("standin.animatic_board", text="Board PDF", icon="FILE_IMAGE")
        row.operator("standin.animatic_otio", text="OTIO / EDL", icon="EXPORT")
        last = context.scene.get(LAST_ANIMATIC)
        if last:
            col = layout.column(align=True)
            col.label(text=os.path.basename(last), icon="FILE_MOVIE")
            row = col.row(align=True)
            row.operator("standin.animatic_play", text="Play", icon="PLAY").where = "PLAYER"
            row.operator("standin.animatic_play", text="Open Edit", icon="SEQUENCE").where = "EDIT"


classes = (STANDIN_PT_animatic,)
