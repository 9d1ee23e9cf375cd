# SPDX-License-Identifier: GPL-3.0-or-later
"""Thin ``bpy.types.Operator``s under ``bpy.ops.standin.*``, one module per area."""

import bpy

from . import animatic, blocking, characters, generate, passes, project, shots

_AREAS = (project, characters, blocking, shots, passes, generate, animatic)
classes = tuple(cls for area in _AREAS for cls in area.classes)

register, unregister = bpy.utils.register_classes_factory(classes)
