# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate all on the demo scene: a second run with nothing changed against the first, and after a move.

Everything real: the demo scene saved to a temporary folder, passes rendered by Cycles, the sketch
engine behind a uvicorn server on 127.0.0.1, takes downloaded and recorded. The first "generate
all" renders every shot's passes and generates every shot; the second finds nothing changed (it
still reads every shot from the scene to know that). Aim: second <= 2% of the first. Then one
stand-in moves: only the shots that see it are generated again, so the time grows with their number.
"""

import pathlib
import tempfile
import time

PASS_SCALE = 0.5


def _generate_all(scene, worker) -> tuple[float, list[str]]:
    from standin.addon import generation
    from standin.addon.quiet import blender_output_silenced

    start = time.perf_counter()
    with blender_output_silenced():
        batch = generation.GenerationBatch(scene, [s.name for s in scene.standin.shots], worker=worker,
                                           pass_scale=PASS_SCALE)
        summary = batch.run(poll_seconds=0.005)
    seconds = time.perf_counter() - start
    assert not summary.failed, summary.messages
    return seconds, sorted(summary.generated)


def _shots_seeing(scene, stand_in) -> list[str]:
    from standin.addon import rig, scene_reader

    seen = []
    for shot in scene.standin.shots:
        for frame in (shot.frame_start, shot.frame_end):
            scene.frame_set(frame)
            joints = list(rig.joint_positions(stand_in).values())
            if scene_reader.CameraView(scene, shot.camera).sees_body([tuple(j) for j in joints]):
                seen.append(shot.name)
                break
    return seen


def _add_extra_seen_by_one_shot(scene):
    """An extra standing where exactly one demo shot sees them (found by trying spots on a grid)."""
    from standin.operators.characters import add_character

    extra = add_character(scene, "Extra", "a passer-by", location=(0.0, 0.0, 0.0))
    for x in range(-8, 9):
        for y in range(-8, 9):
            extra.stand_in.location = (x * 0.75, y * 0.75, 0.0)
            if len(_shots_seeing(scene, extra.stand_in)) == 1:
                return extra
    raise RuntimeError("no spot is seen by exactly one demo shot")


def run() -> None:
    from standin.cli import start_blender
    from standin.addon import demo, generation
    from standin.addon.quiet import blender_output_silenced
    from standin.ai_backend.engines.sketch import SketchEngine
    from standin.ai_backend.local_server import LiveServer
    from standin.ai_backend.server import create_app

    bpy = start_blender()
    scene = bpy.context.scene
    demo.build_demo(scene)
    _add_extra_seen_by_one_shot(scene)
    with tempfile.TemporaryDirectory() as folder:
        root = pathlib.Path(folder)
        with blender_output_silenced():
            bpy.ops.wm.save_as_mainfile(filepath=str(root / "scene.blend"))
        server = LiveServer(create_app(SketchEngine(), root / "backend"))
        try:
            worker = generation.worker_for(server.url, "", 60.0)
            frames = sum(s.duration for s in scene.standin.shots)
            first, generated = _generate_all(scene, worker)
            second, regenerated = _generate_all(scene, worker)
            assert regenerated == [], regenerated
            print(f"demo: {len(generated)} shots, {frames} frames, passes at {PASS_SCALE:g}x: first generate all "
                  f"{first:.2f} s, second with nothing changed {second:.3f} s = {100 * second / first:.2f}% of the "
                  f"first (aim <= 2%)")
            moves = []
            for character in scene.standin.cast:
                character.stand_in.location.x += 0.05
                print(f"  {character.name} is seen by {', '.join(_shots_seeing(scene, character.stand_in))}")
                seconds, shots = _generate_all(scene, worker)
                moves.append((len(shots), seconds, character.name, shots))
            for count, seconds, name, shots in sorted(moves):
                print(f"  moved {name}: {count} shot(s) generated again ({', '.join(shots) or 'none'}) in "
                      f"{seconds:.2f} s = {100 * seconds / first:.0f}% of the first run")
        finally:
            generation.close_workers()
            server.stop()
