# SPDX-License-Identifier: GPL-3.0-or-later
"""What the StandIn sidebar panels share."""


class StandInPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "StandIn"


def list_with_buttons(layout, list_type: str, data, collection: str, index: str, add: str, remove: str,
                      rows: int = 3, add_icon: str = "ADD"):
    """A UI list with its add/remove buttons beside it; returns the button column for more."""
    row = layout.row()
    row.template_list(list_type, "", data, collection, data, index, rows=rows)
    column = row.column(align=True)
    column.operator(add, icon=add_icon, text="")
    column.operator(remove, icon="REMOVE", text="")
    return column
