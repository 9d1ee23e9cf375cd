# SPDX-License-Identifier: GPL-3.0-or-later
"""Set panel: the sets and the pieces to block them with."""

import bpy

from ..addon import set_pieces
from .common import StandInPanel, list_with_buttons


class STANDIN_UL_sets(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        layout.prop(item, "name", text="", emboss=False, icon="OUTLINER_COLLECTION")


class STANDIN_PT_set(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_set"
    bl_label = "Set"

    def draw(self, context):
        layout = self.layout
        data = context.scene.standin
        list_with_buttons(layout, "STANDIN_UL_sets", data, "sets", "set_index",
                          "standin.set_add", "standin.set_remove", rows=2)
        active = data.active_set
        if active is not None:
            layout.prop(active, "prompt")
            layout.prop(active, "seed")
            layout.prop(active, "time_of_day")
            layout.prop(active, "collection")
        layout.label(text="Add at the 3D cursor:")
        grid = layout.grid_flow(columns=3, align=True)
        for key, piece in set_pieces.PIECES.items():
            grid.operator("standin.piece_add", text=piece.label).kind = key


classes = (STANDIN_UL_sets, STANDIN_PT_set)
