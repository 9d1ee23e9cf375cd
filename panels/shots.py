# SPDX-License-Identifier: GPL-3.0-or-later
"""Shots panel: the shot list in edit order, with add, duplicate, remove, reorder and jump."""

import bpy

from ..addon import take_display
from .common import StandInPanel, list_with_buttons

_STATUS_ICONS = {"BLOCKING": "GREASEPENCIL", "READY": "CHECKMARK", "GENERATED": "IMAGE_DATA",
                 "FINAL": "SOLO_ON", "BROKEN": "ERROR"}


class STANDIN_UL_shots(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        thumbnail = take_display.thumbnail_icon(item)
        if thumbnail:
            row.label(text="", icon_value=thumbnail)
        row.label(text="", icon=_STATUS_ICONS.get(item.status, "DOT"))
        row.label(text=item.name)
        row.label(text=f"{item.shot_size} {item.lens:.0f}mm")
        row.label(text=f"{item.frame_start}–{item.frame_end}")
        row.operator("standin.shot_jump", text="", icon="VIEW_CAMERA", emboss=False).index = index


class STANDIN_PT_shots(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_shots"
    bl_label = "Shots"

    def draw(self, context):
        layout = self.layout
        data = context.scene.standin
        layout.operator("standin.shot_add", icon="ADD")
        col = list_with_buttons(layout, "STANDIN_UL_shots", data, "shots", "shot_index",
                                "standin.shot_duplicate", "standin.shot_remove", rows=4, add_icon="DUPLICATE")
        col.separator()
        col.operator("standin.shot_move", icon="TRIA_UP", text="").direction = "UP"
        col.operator("standin.shot_move", icon="TRIA_DOWN", text="").direction = "DOWN"
        shot = data.active_shot
        if shot is None:
            return
        if shot.status == "BROKEN":
            box = layout.box()
            box.alert = True
            for line in _wrap(shot.problem, 40):
                box.label(text=line)
        row = layout.row(align=True)
        row.operator("standin.shot_jump", icon="VIEW_CAMERA")
        row.operator("standin.shot_rename", icon="GREASEPENCIL", text="Rename")
        col = layout.column(align=True)
        col.prop(shot, "frame_start")
        col.prop(shot, "frame_end")
        layout.prop(shot, "status")
        layout.prop(shot, "action")
        layout.prop(shot, "notes")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


classes = (STANDIN_UL_shots, STANDIN_PT_shots)
