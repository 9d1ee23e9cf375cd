# SPDX-License-Identifier: GPL-3.0-or-later
"""Thin ``bpy.types.Operator``s under ``bpy.ops.standin.*``, one module per area."""

import bpy

from . import blocking, project, shots

# TEMP-DEV-GUARD
try:
    from . import characters
except ImportError:
    characters = None
_AREAS = tuple(a for a in (project, characters, blocking, shots) if a is not None)
classes = tuple(cls for area in _AREAS for cls in area.classes)

register, unregister = bpy.utils.register_classes_factory(classes)
