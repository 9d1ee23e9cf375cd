# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender-side domain of StandIn.

Modules that import ``bpy`` (properties, rig, blocking, shots, handlers, demo) sit beside pure
modules that never do (formats, shot_names, framing, camera_moves, mannequin, poses,
set_pieces): the pure ones are tested without Blender and reused by the CLI and the backend.
"""
