# SPDX-License-Identifier: GPL-3.0-or-later
"""The "StandIn" tab of the 3D viewport sidebar, one panel per area."""

import bpy

from . import animatic, camera, cast, generate, passes, project, set, shots

_AREAS = (project, cast, set, shots, camera, passes, generate, animatic)
classes = tuple(cls for area in _AREAS for cls in area.classes)

register, unregister = bpy.utils.register_classes_factory(classes)
