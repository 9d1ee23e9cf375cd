# SPDX-License-Identifier: GPL-3.0-or-later
"""The sample scene: two characters talking across a kitchen table, covered in three shots.

Built only through StandIn's own functions (the same ones the operators call), so the demo
exercises the product end to end. ``standin demo`` saves it and renders a look through a shot.
"""

from dataclasses import dataclass, field

import bpy

from . import blocking, properties, rig, shots

SET_NAME = "Kitchen"


@dataclass
class DemoSummary:
    characters: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)

    def headline(self) -> str:
        return (f"Demo: {len(self.characters)} characters, {len(self.pieces)} set pieces, "
                f"{len(self.shots)} shots")


def _room(scene) -> list[str]:
    """A kitchen set open on two sides for the cameras: floor, a back wall with a window, a side
    wall with a door, a table and two chairs."""
    pieces = [
        blocking.add_piece(scene, "floor", name="Floor", width=9.0, depth=8.0),
        blocking.add_piece(scene, "wall", name="Wall back", location=(0, 3.0, 0),
                           **blocking.wall_params(7.0, 2.7, with_door=False, with_window=True)),
        blocking.add_piece(scene, "wall", name="Wall left", location=(-3.5, 0.5, 0), rotation_z_deg=90,
                           **blocking.wall_params(5.0, 2.7, with_door=True, with_window=False)),
        blocking.add_piece(scene, "table", name="Table", location=(0, 1.0, 0)),
        blocking.add_piece(scene, "chair", name="Chair Theo", location=(0.2, 1.75, 0), rotation_z_deg=-20),
        blocking.add_piece(scene, "chair", name="Chair spare", location=(-0.6, 1.75, 0)),
    ]
    return [p.name for p in pieces]


def _world(scene) -> None:
    world = bpy.data.worlds.get("StandIn World") or bpy.data.worlds.new("StandIn World")
    world.color = (0.32, 0.34, 0.38)
    scene.world = world


def build_demo(scene) -> DemoSummary:
    """Fill ``scene`` with the sample blocking; returns what was made."""
    from ..operators.characters import add_character

    data = properties.ensure_project(scene)
    data.project.aspect = "2.39"
    data.project.resolution = 1280
    data.project.fps = "24"
    data.project.style_prompt = "pencil storyboard frame, grey wash, cinematic lighting"
    summary = DemoSummary()

    blocking.ensure_set(scene, SET_NAME, prompt="small kitchen at night, warm practical light, rain on the window",
                        seed=1234)
    summary.pieces = _room(scene)

    _world(scene)
    # Staged for an open front (-Y): Theo sits behind the table facing out, Mara stands at its end.
    mara = add_character(scene, "Mara", "woman in her forties, short grey hair, red raincoat",
                         color=(0.85, 0.25, 0.2, 1.0), height=1.68, location=(-1.3, 0.7, 0), facing_deg=120)
    theo = add_character(scene, "Theo", "young man, curly dark hair, blue denim jacket",
                         color=(0.2, 0.45, 0.85, 1.0), height=1.82, location=(0.2, 1.75, 0), facing_deg=-20)
    summary.characters = [mara.name, theo.name]
    chair = bpy.data.objects["Chair Theo"]
    rig.apply_pose(theo.stand_in, "sit", frame=1,
                   seat_height=blocking.seat_height_of(chair) - theo.stand_in.matrix_world.translation.z)
    rig.apply_pose(mara.stand_in, "talk", frame=1)
    rig.look_at(mara.stand_in, rig.head_target(theo.stand_in))
    scene.frame_set(1)

    specs = (
        dict(size="WS", lens=24.0, angle="HIGH", variant="TWO_SHOT", subjects=("Mara", "Theo"),
             move="STATIC", duration=72, action="Mara comes in out of the rain; Theo is already at the table."),
        dict(size="MS", lens=35.0, angle="EYE", variant="TWO_SHOT", subjects=("Mara", "Theo"),
             move="STATIC", duration=60, action="They face each other across the table."),
        dict(size="CU", lens=50.0, angle="EYE", variant="SINGLE", subjects=("Mara",),
             move="DOLLY_IN", amount=0.4, duration=48, action="Mara tells him the truth."),
    )
    for spec in specs:
        shot = shots.add_shot(scene, duration=spec["duration"])
        shot.shot_size, shot.lens, shot.angle = spec["size"], spec["lens"], spec["angle"]
        shot.variant, shot.move, shot.move_amount = spec["variant"], spec["move"], spec.get("amount", 1.0)
        shot.action = spec["action"]
        for name in spec["subjects"]:
            shot.subjects.add().name = name
        shots.frame_shot(scene, shot)
        summary.shots.append(shot.name)
    scene.frame_set(scene.standin.shots[0].frame_start)
    return summary
