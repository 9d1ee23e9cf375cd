# SPDX-License-Identifier: GPL-3.0-or-later
"""What the StandIn sidebar panels share."""


class StandInPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "StandIn"
