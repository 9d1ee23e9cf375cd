# SPDX-License-Identifier: GPL-3.0-or-later
"""Cast and stand-in operators: cast a character, pose its stand-in, make it look at something."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, StringProperty

from ..addon import blocking, poses, rig
from .common import reports_errors, selected_stand_ins

#: Colours handed to new characters in turn (distinct in masks and sketches).
PALETTE = (
    (0.85, 0.25, 0.20, 1.0),
    (0.20, 0.45, 0.85, 1.0),
    (0.95, 0.70, 0.15, 1.0),
    (0.30, 0.70, 0.35, 1.0),
    (0.60, 0.30, 0.75, 1.0),
    (0.15, 0.70, 0.75, 1.0),
)


#: Characters name folders (mask/<character>/): keep names valid on every file system.
_NOT_IN_FOLDER_NAMES = '/\\:*?"<>|'


def add_character(scene, name: str, description: str = "", color=None, height: float = 1.75,
                  location=None, facing_deg: float = 0.0):
    """Cast a character and give it a stand-in; returns the cast entry."""
    data = scene.standin
    name = name.strip()
    if not name:
        raise ValueError("Give the character a name.")
    if name[0] in "._" or any(c in name for c in _NOT_IN_FOLDER_NAMES):
        raise ValueError(f"'{name}' can't name a character: its masks go in a folder of that name, so avoid "
                         f"{' '.join(_NOT_IN_FOLDER_NAMES)} and a leading '.' or '_'.")
    if data.cast.get(name) is not None:
        raise ValueError(f"There is already a character named {name}: pick another name.")
    if color is None:
        color = PALETTE[len(data.cast) % len(PALETTE)]
    pass_index = max((c.pass_index for c in data.cast), default=0) + 1
    location = tuple(scene.cursor.location) if location is None else location
    stand_in = rig.create_stand_in(
        scene, name, height=height, color=color, location=location, facing_deg=facing_deg, pass_index=pass_index
    )
    character = data.cast.add()
    character.name = name
    character.description = description
    character.height = height
    character.color = color
    character.pass_index = pass_index
    character.stand_in = stand_in
    data.cast_index = len(data.cast) - 1
    return character


class STANDIN_OT_character_add(bpy.types.Operator):
    """Cast a new character and drop its posable stand-in at the 3D cursor"""

    bl_idname = "standin.character_add"
    bl_label = "Add Character"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", default="Character")
    description: StringProperty(name="Description", description="Prompt describing the character's look")
    height: FloatProperty(name="Height", default=1.75, min=0.9, max=2.2, unit="LENGTH",
                          description="Standing height: about 1.1 m for a child, 1.9 m for a tall adult")
    facing: FloatProperty(name="Facing", default=0.0, subtype="ANGLE",
                          description="Turn about Z; 0 faces the front view (-Y)")
    use_palette: BoolProperty(name="Automatic colour", default=True)
    color: FloatVectorProperty(name="Colour", subtype="COLOR", size=4, min=0, max=1, default=(0.8, 0.3, 0.2, 1.0))

    def invoke(self, context, event):
        data = context.scene.standin
        base, number = "Character", len(data.cast) + 1
        while data.cast.get(f"{base} {number}") is not None:
            number += 1
        self.name = f"{base} {number}"
        return context.window_manager.invoke_props_dialog(self)

    @reports_errors
    def execute(self, context):
        import math

        character = add_character(
            context.scene, self.name, self.description,
            color=None if self.use_palette else tuple(self.color),
            height=self.height, facing_deg=math.degrees(self.facing),
        )
        for obj in context.selected_objects:
            obj.select_set(False)
        character.stand_in.select_set(True)
        context.view_layer.objects.active = character.stand_in
        self.report({"INFO"}, f"Cast {character.name} ({character.height:.2f} m)")
        return {"FINISHED"}


class STANDIN_OT_character_remove(bpy.types.Operator):
    """Remove the active character from the cast (and its stand-in, unless told to keep it)"""

    bl_idname = "standin.character_remove"
    bl_label = "Remove Character"
    bl_options = {"REGISTER", "UNDO"}

    keep_stand_in: BoolProperty(name="Keep stand-in", default=False)

    @classmethod
    def poll(cls, context):
        if context.scene.standin.active_character is None:
            cls.poll_message_set("No character is selected in the cast list")
            return False
        return True

    @reports_errors
    def execute(self, context):
        data = context.scene.standin
        character = data.active_character
        name, stand_in = character.name, character.stand_in
        data.cast.remove(data.cast_index)
        data.cast_index = max(0, min(data.cast_index, len(data.cast) - 1))
        if stand_in is not None and not self.keep_stand_in:
            rig.remove_stand_in(stand_in)
        self.report({"INFO"}, f"Removed {name} from the cast")
        return {"FINISHED"}


def _seat_for(scene, stand_in, candidates):
    """The seat a stand-in sits on: a selected seat, else the nearest seat within 1.5 m."""
    seats = [o for o in candidates if blocking.seat_height_of(o) is not None]
    if not seats:
        seats = [o for o in scene.objects if blocking.seat_height_of(o) is not None]
        here = stand_in.matrix_world.translation
        seats = [o for o in seats if (o.matrix_world.translation - here).xy.length < 1.5]
        seats.sort(key=lambda o: (o.matrix_world.translation - here).xy.length)
    return seats[0] if seats else None


class _OnSelectedStandIns:
    """Mixin of the operators that act on the selected stand-ins."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not selected_stand_ins(context):
            cls.poll_message_set("Select a stand-in first (add one from the Cast panel)")
            return False
        return True


class STANDIN_OT_pose_apply(_OnSelectedStandIns, bpy.types.Operator):
    """Pose the selected stand-ins from the pose library (keyed at the current frame)"""

    bl_idname = "standin.pose_apply"
    bl_label = "Apply Pose"
    pose: EnumProperty(name="Pose", items=[tuple(p[:3]) for p in poses.POSES])

    @reports_errors
    def execute(self, context):
        scene = context.scene
        stand_ins = selected_stand_ins(context)
        others = [o for o in context.selected_objects if o not in stand_ins]
        for stand_in in stand_ins:
            seat_height = None
            if self.pose == "sit":
                seat = _seat_for(scene, stand_in, others)
                if seat is not None:
                    seat_height = blocking.seat_height_of(seat) - stand_in.matrix_world.translation.z
                    self.report({"INFO"}, f"{stand_in.name} sits on {seat.name} ({seat_height:.2f} m)")
            rig.apply_pose(stand_in, self.pose, frame=scene.frame_current, seat_height=seat_height)
        return {"FINISHED"}


class STANDIN_OT_look_at(_OnSelectedStandIns, bpy.types.Operator):
    """Make the selected stand-ins look at the active object (select them, then Shift-click the target)"""

    bl_idname = "standin.look_at"
    bl_label = "Look At"
    clear: BoolProperty(name="Stop looking", default=False, description="Remove the look-at instead")

    @reports_errors
    def execute(self, context):
        stand_ins = selected_stand_ins(context)
        if self.clear:
            for stand_in in stand_ins:
                rig.clear_look_at(stand_in)
            return {"FINISHED"}
        target = context.active_object
        lookers = [o for o in stand_ins if o is not target]
        if target is None or not lookers:
            raise ValueError("Select the stand-in, then Shift-click what it should look at (the target must be active).")
        for stand_in in lookers:
            rig.look_at(stand_in, target)
        self.report({"INFO"}, f"{', '.join(o.name for o in lookers)} look at {target.name}")
        return {"FINISHED"}


classes = (STANDIN_OT_character_add, STANDIN_OT_character_remove, STANDIN_OT_pose_apply, STANDIN_OT_look_at)
