# SPDX-License-Identifier: GPL-3.0-or-later
"""The "StandIn" tab of the 3D viewport sidebar, one panel per area."""

import bpy

from . import camera, project, set, shots

# TEMP-DEV-GUARD
try:
    from . import cast
except ImportError:
    cast = None
_AREAS = tuple(a for a in (project, cast, set, shots, camera) if a is not None)
classes = tuple(cls for area in _AREAS for cls in area.classes)

register, unregister = bpy.utils.register_classes_factory(classes)
