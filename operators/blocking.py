# SPDX-License-Identifier: GPL-3.0-or-later
"""Set operators: make sets and block them with real-size pieces."""

import math

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..addon import blocking, set_pieces
from .common import reports_errors


class STANDIN_OT_set_add(bpy.types.Operator):
    """Make a new set (a location with its own collection of pieces, prompt and plate seed)"""

    bl_idname = "standin.set_add"
    bl_label = "Add Set"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", default="Set")
    prompt: StringProperty(name="Prompt", description="What the location looks like")
    seed: IntProperty(name="Seed", default=1, min=0)

    def invoke(self, context, event):
        sets = context.scene.standin.sets
        number = len(sets) + 1
        while sets.get(f"Set {number}") is not None:
            number += 1
        self.name = f"Set {number}"
        return context.window_manager.invoke_props_dialog(self)

    @reports_errors
    def execute(self, context):
        name = self.name.strip()
        if not name:
            raise ValueError("Give the set a name.")
        if context.scene.standin.sets.get(name) is not None:
            raise ValueError(f"There is already a set named {name}: pick another name.")
        blocking.ensure_set(context.scene, name, self.prompt, self.seed)
        self.report({"INFO"}, f"Set {name} is active: new pieces go into it")
        return {"FINISHED"}


class STANDIN_OT_set_remove(bpy.types.Operator):
    """Forget the active set (its pieces and collection stay in the scene)"""

    bl_idname = "standin.set_remove"
    bl_label = "Remove Set"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.scene.standin.active_set is None:
            cls.poll_message_set("No set is selected in the set list")
            return False
        return True

    @reports_errors
    def execute(self, context):
        data = context.scene.standin
        name = data.active_set.name
        data.sets.remove(data.set_index)
        data.set_index = max(0, min(data.set_index, len(data.sets) - 1))
        self.report({"INFO"}, f"Removed set {name}; its pieces are still in the scene")
        return {"FINISHED"}


class STANDIN_OT_piece_add(bpy.types.Operator):
    """Add a real-size set piece at the 3D cursor, into the active set"""

    bl_idname = "standin.piece_add"
    bl_label = "Add Set Piece"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="Piece", items=[(k, p.label, p.description) for k, p in set_pieces.PIECES.items()])
    rotation: FloatProperty(name="Rotation", subtype="ANGLE", default=0.0)
    # Wall only: its size and openings.
    length: FloatProperty(name="Length", default=4.0, min=0.2, max=50.0, unit="LENGTH")
    height: FloatProperty(name="Height", default=2.7, min=0.5, max=10.0, unit="LENGTH")
    with_door: BoolProperty(name="Door opening", default=False)
    with_window: BoolProperty(name="Window opening", default=False)

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "kind")
        layout.prop(self, "rotation")
        if self.kind == "wall":
            layout.prop(self, "length")
            layout.prop(self, "height")
            layout.prop(self, "with_door")
            layout.prop(self, "with_window")

    @reports_errors
    def execute(self, context):
        params = {}
        if self.kind == "wall":
            params = blocking.wall_params(self.length, self.height, self.with_door, self.with_window)
        piece = blocking.add_piece(
            context.scene, self.kind, location=tuple(context.scene.cursor.location),
            rotation_z_deg=math.degrees(self.rotation), **params,
        )
        for obj in context.selected_objects:
            obj.select_set(False)
        piece.select_set(True)
        context.view_layer.objects.active = piece
        return {"FINISHED"}


classes = (STANDIN_OT_set_add, STANDIN_OT_set_remove, STANDIN_OT_piece_add)
