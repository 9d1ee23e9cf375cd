# SPDX-License-Identifier: GPL-3.0-or-later
"""Set panel: the sets and the pieces to block them with."""

import bpy

from ..addon import set_pieces
from .common import StandInPanel


class STANDIN_UL_sets(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        layout.prop(item, "name", text="", emboss=False, icon="OUTLINER_COLLECTION")


class STANDIN_PT_set(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_set"
    bl_label = "Set"

    def draw(self, context):
        layout = self.layout
        data = context.scene.standin
        row = layout.row()
        row.template_list("STANDIN_UL_sets", "", data, "sets", data, "set_index", rows=2)
        col = row.column(align=True)
        col.operator("standin.set_add", icon="ADD", text="")
        col.operator("standin.set_remove", icon="REMOVE", text="")
        active = data.active_set
        if active is not None:
            layout.prop(active, "prompt")
            layout.prop(active, "seed")
            layout.prop(active, "collection")
        layout.label(text="Add at the 3D cursor:")
        grid = layout.grid_flow(columns=3, align=True)
        for key, piece in set_pieces.PIECES.items():
            grid.operator("standin.piece_add", text=piece.label).kind = key


classes = (STANDIN_UL_sets, STANDIN_PT_set)
