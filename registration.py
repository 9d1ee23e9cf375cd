# SPDX-License-Identifier: GPL-3.0-or-later
"""One place that registers every Blender class of StandIn, in dependency order.

Each area module exposes ``classes`` (and optionally ``register_extra``/``unregister_extra``);
properties come first because operators and panels read them.
"""

import bpy

from .addon import handlers, properties
from . import operators, panels

_AREAS = (properties, operators, panels, handlers)


def register():
    for area in _AREAS:
        area.register()


def unregister():
    for area in reversed(_AREAS):
        area.unregister()
