# SPDX-License-Identifier: GPL-3.0-or-later
"""Cast panel: the characters, their look and LoRA, their stand-in's pose."""

import bpy

from ..addon import poses
from .common import StandInPanel, list_with_buttons


class STANDIN_UL_cast(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "color", text="")
        row.prop(item, "name", text="", emboss=False)
        if item.stand_in is None or item.stand_in.name not in context.scene.objects:
            row.label(text="", icon="ERROR")


class STANDIN_PT_cast(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_cast"
    bl_label = "Cast"

    def draw(self, context):
        layout = self.layout
        data = context.scene.standin
        list_with_buttons(layout, "STANDIN_UL_cast", data, "cast", "cast_index",
                          "standin.character_add", "standin.character_remove")
        character = data.active_character
        if character is not None:
            box = layout.box()
            box.prop(character, "description")
            box.prop(character, "color")
            box.prop(character, "stand_in")
            if character.stand_in is None:
                box.label(text="No stand-in: remove and cast again to get one.", icon="ERROR")
            sub = box.column(align=True)
            row = sub.row(align=True)
            row.prop(character, "lora_file")
            row.operator("standin.pick_model", text="", icon="VIEWZOOM").kind = "LORA"  # what the backend lists
            sub.prop(character, "lora_trigger")
            sub.prop(character, "lora_weight")
            box.prop(character, "reference_image")
        layout.label(text="Pose the selected stand-ins:")
        grid = layout.grid_flow(columns=3, align=True)
        for key, label, _description in poses.POSES:
            grid.operator("standin.pose_apply", text=label).pose = key
        row = layout.row(align=True)
        row.operator("standin.look_at", icon="HIDE_OFF")
        row.operator("standin.look_at", text="Stop Looking").clear = True


classes = (STANDIN_UL_cast, STANDIN_PT_cast)
