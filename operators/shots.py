# SPDX-License-Identifier: GPL-3.0-or-later
"""Shot operators: new shot from the selected stand-ins, and the shot list's edit actions."""

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from ..addon import camera_moves, formats, framing, shots
from .common import character_of, reports_errors, selected_stand_ins


class _OnActiveShot:
    """Mixin of the shot list's actions: undoable, and only when a shot is selected."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.scene.standin.active_shot is None:
            cls.poll_message_set("No shot is selected in the shot list: add one with 'New Shot'")
            return False
        return True


class STANDIN_OT_shot_add(bpy.types.Operator):
    """New shot framing the selected stand-ins at a shot size, lens and angle, with a camera move.
    For over-the-shoulder, the active stand-in is the one framed, the other is seen over the shoulder"""

    bl_idname = "standin.shot_add"
    bl_label = "New Shot From Selection"
    bl_options = {"REGISTER", "UNDO"}

    shot_size: EnumProperty(name="Size", items=[(s.key, s.label, s.abbreviation) for s in framing.SHOT_SIZES],
                            default="MS")
    lens: FloatProperty(name="Lens", default=35.0, min=8.0, max=300.0, description="Focal length in mm")
    sensor: EnumProperty(name="Sensor", items=[(s.key, s.label, "") for s in formats.SENSORS], default="S35")
    angle: EnumProperty(name="Angle", items=framing.ANGLES, default="EYE")
    variant: EnumProperty(name="Framing", items=framing.VARIANTS, default="SINGLE")
    move: EnumProperty(name="Move", items=camera_moves.MOVES, default="STATIC")
    move_amount: FloatProperty(name="Amount", default=1.0,
                               description="Metres for travel, degrees for pan/tilt/orbit, mm for zoom")
    easing: EnumProperty(name="Easing", items=camera_moves.EASINGS, default="EASE_IN_OUT")
    duration: IntProperty(name="Frames", default=shots.DEFAULT_DURATION, min=1, max=100000)
    placement: EnumProperty(
        name="Place",
        items=(("END", "At the end", "After the last shot in the timeline"),
               ("AFTER_ACTIVE", "After the active shot", "A cut-in: takes the second half of the active shot")),
        default="END",
    )
    name: StringProperty(name="Name", description="Leave empty to number it automatically")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    @reports_errors
    def execute(self, context):
        scene = context.scene
        data = scene.standin
        stand_ins = selected_stand_ins(context)
        characters = [character_of(scene, s) for s in stand_ins]
        if any(c is None for c in characters):
            raise ValueError("A selected stand-in belongs to no character in the cast: cast it first.")
        needed = 1 if self.variant == "SINGLE" else 2
        if characters and len(characters) < needed:
            label = dict((k, n) for k, n, _d in framing.VARIANTS)[self.variant]
            raise ValueError(f"A {label.lower()} needs two stand-ins selected.")
        if self.variant == "OTS":
            characters = [characters[1], characters[0]]  # foreground first, framed (active) second
        after = data.active_shot.name if self.placement == "AFTER_ACTIVE" and data.active_shot else None
        shot = shots.add_shot(scene, self.name.strip() or None, after=after, duration=self.duration)
        for key in ("shot_size", "lens", "sensor", "angle", "variant", "move", "move_amount", "easing"):
            setattr(shot, key, getattr(self, key))
        if not characters:
            _place_at_view(context, shot)
            self.report({"WARNING"}, f"{shot.name}: no stand-in was selected, so its camera copies the view. "
                                     "Select stand-ins and press Re-frame to frame them.")
            return {"FINISHED"}
        for character in characters[:needed]:
            shot.subjects.add().name = character.name
        placement = shots.frame_shot(scene, shot)
        scene.camera = shot.camera
        if placement.warning:
            self.report({"WARNING"}, f"{shot.name}: {placement.warning}")
        self.report({"INFO"}, f"{shot.name}: {self.shot_size} on {', '.join(c.name for c in characters)}, "
                              f"{self.lens:.0f} mm, frames {shot.frame_start}–{shot.frame_end}")
        return {"FINISHED"}


def _place_at_view(context, shot) -> None:
    """Give an unframed shot's camera the 3D view's point of view (or the 3D cursor's place)."""
    region_3d = getattr(context.space_data, "region_3d", None) if context.space_data else None
    if region_3d is not None:
        shot.camera.matrix_world = region_3d.view_matrix.inverted()
    else:
        shot.camera.location = context.scene.cursor.location


class STANDIN_OT_shot_reframe(_OnActiveShot, bpy.types.Operator):
    """Frame the active shot's subjects again with its size, lens, angle and move
    (makes a new camera if its camera was deleted)"""

    bl_idname = "standin.shot_reframe"
    bl_label = "Re-frame Shot"

    @reports_errors
    def execute(self, context):
        scene = context.scene
        shot = scene.standin.active_shot
        stand_ins = selected_stand_ins(context)
        if stand_ins:
            characters = [character_of(scene, s) for s in stand_ins]
            if all(characters):
                if shot.variant == "OTS" and len(characters) >= 2:
                    characters = [characters[1], characters[0]]
                shot.subjects.clear()
                for character in characters:
                    shot.subjects.add().name = character.name
        placement = shots.frame_shot(scene, shot)
        shots.validate_shots(scene)
        shots.sync_markers(scene)
        if placement.warning:
            self.report({"WARNING"}, f"{shot.name}: {placement.warning}")
        return {"FINISHED"}


class STANDIN_OT_shot_duplicate(_OnActiveShot, bpy.types.Operator):
    """Duplicate the active shot (settings and camera move) at the end of the timeline"""

    bl_idname = "standin.shot_duplicate"
    bl_label = "Duplicate Shot"

    @reports_errors
    def execute(self, context):
        copy = shots.duplicate_shot(context.scene, context.scene.standin.active_shot.name)
        self.report({"INFO"}, f"Duplicated as {copy.name}")
        return {"FINISHED"}


class STANDIN_OT_shot_remove(_OnActiveShot, bpy.types.Operator):
    """Remove the active shot and its camera"""

    bl_idname = "standin.shot_remove"
    bl_label = "Remove Shot"

    @reports_errors
    def execute(self, context):
        name = context.scene.standin.active_shot.name
        shots.remove_shot(context.scene, name)
        self.report({"INFO"}, f"Removed {name}")
        return {"FINISHED"}


class STANDIN_OT_shot_move(_OnActiveShot, bpy.types.Operator):
    """Move the active shot up or down in the edit order"""

    bl_idname = "standin.shot_move"
    bl_label = "Move Shot"
    direction: EnumProperty(items=(("UP", "Up", ""), ("DOWN", "Down", "")))

    @reports_errors
    def execute(self, context):
        shots.move_shot(context.scene, context.scene.standin.active_shot.name, -1 if self.direction == "UP" else 1)
        return {"FINISHED"}


class STANDIN_OT_shot_jump(_OnActiveShot, bpy.types.Operator):
    """Go to the shot: playhead on its first frame, looking through its camera"""

    bl_idname = "standin.shot_jump"
    bl_label = "Jump to Shot"
    index: IntProperty(name="Shot", default=-1, description="Index in the shot list; -1 for the active shot")

    @reports_errors
    def execute(self, context):
        data = context.scene.standin
        if self.index >= 0:
            if self.index >= len(data.shots):
                raise ValueError(f"There is no shot number {self.index + 1}.")
            data.shot_index = self.index
        shot = data.active_shot
        problem = shots.camera_problem(context.scene, shot)
        if problem:
            shots.validate_shots(context.scene)
            raise ValueError(problem)
        shots.jump_to_shot(context.scene, shot)
        space = context.space_data
        if space is not None and space.type == "VIEW_3D":
            space.region_3d.view_perspective = "CAMERA"
        return {"FINISHED"}


class STANDIN_OT_shot_rename(_OnActiveShot, bpy.types.Operator):
    """Rename the active shot (SQ010_SH0010 form, unique), its marker and camera follow"""

    bl_idname = "standin.shot_rename"
    bl_label = "Rename Shot"
    new_name: StringProperty(name="New name")

    def invoke(self, context, event):
        self.new_name = context.scene.standin.active_shot.name
        return context.window_manager.invoke_props_dialog(self)

    @reports_errors
    def execute(self, context):
        old = context.scene.standin.active_shot.name
        shots.rename_shot(context.scene, old, self.new_name.strip())
        self.report({"INFO"}, f"Renamed {old} to {self.new_name.strip()}")
        return {"FINISHED"}


classes = (
    STANDIN_OT_shot_add,
    STANDIN_OT_shot_reframe,
    STANDIN_OT_shot_duplicate,
    STANDIN_OT_shot_remove,
    STANDIN_OT_shot_move,
    STANDIN_OT_shot_jump,
    STANDIN_OT_shot_rename,
)
