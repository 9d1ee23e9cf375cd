# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's animatic from its blocking: a full build against its plain renders, and a rebuild after one shot changed.

Ours: ``animatic.build`` from an empty cache: read the shots, playblast each (Workbench), fill the
edit scene, encode each shot's piece with its burn-ins, join the pieces into the MP4. The baseline,
measured in the same run with the same renderer, size and look: each shot rendered straight to
its own H.264 MP4 through its camera (what one would do without StandIn), and the same to PNGs.
Then the close-up's lens changes and the animatic is built again: only that shot is rendered and
encoded. Aims: overhead ratio <= 1.3, rebuild <= 30 % of a full build.
"""

import pathlib
import shutil
import tempfile
import time

SCALE = 0.5


def _plain_renders(scene, folder: pathlib.Path, width: int, height: int, movie: bool) -> float:
    import bpy

    from standin.addon import animatic, playblast

    render = scene.render
    saved = (scene.frame_start, scene.frame_end)
    start = time.perf_counter()
    with playblast.Playblaster(scene, width, height) as look:
        if movie:
            animatic._movie_settings(render, video=True, audio=False)
        for shot in scene.standin.shots:
            scene.camera = shot.camera
            scene.frame_start, scene.frame_end = shot.frame_start, shot.frame_end
            render.filepath = str(folder / (f"{shot.name}.mp4" if movie else f"{shot.name}-####.png"))
            bpy.ops.render.render(animation=True, scene=scene.name)
        seconds = time.perf_counter() - start
        if movie:
            settings = render.image_settings
            if hasattr(settings, "media_type"):
                settings.media_type = "IMAGE"
            settings.file_format = "PNG"
        del look
    scene.frame_start, scene.frame_end = saved
    return seconds


def _build(scene):
    from standin.addon import animatic

    start = time.perf_counter()
    result = animatic.AnimaticJob(scene, scale=SCALE).run()
    assert result.ok, result.message
    return time.perf_counter() - start, result


def run() -> None:
    from standin.addon import demo, edit_list
    from standin.addon.quiet import blender_output_silenced
    from standin.cli import start_blender

    bpy = start_blender()
    scene = bpy.context.scene
    demo.build_demo(scene)
    width, height = edit_list.output_size(scene.render.resolution_x, scene.render.resolution_y, SCALE)
    frames = sum(s.duration for s in scene.standin.shots)
    with tempfile.TemporaryDirectory() as folder, blender_output_silenced():
        folder = pathlib.Path(folder)
        bpy.ops.wm.save_as_mainfile(filepath=str(folder / "scene.blend"))
        (folder / "plain").mkdir()
        _plain_renders(scene, folder / "plain", width, height, movie=False)  # warm-up: first-render costs
        # best of two of everything: the machine is shared, its noise only ever adds time
        plain_png = min(_plain_renders(scene, folder / "plain", width, height, movie=False) for _ in range(2))
        plain_mp4 = min(_plain_renders(scene, folder / "plain", width, height, movie=True) for _ in range(2))
        fulls = []
        for _ in range(2):
            shutil.rmtree(folder / "standin", ignore_errors=True)
            seconds, result = _build(scene)
            assert len(result.playblasts_rendered) == len(scene.standin.shots)
            fulls.append(seconds)
        full = min(fulls)
        changed = scene.standin.shots[-1]
        rebuilds = []
        for step in (15.0, -15.0):
            changed.camera.data.lens += step
            seconds, again = _build(scene)
            assert again.playblasts_rendered == [changed.name] and again.segments_encoded == [changed.name]
            rebuilds.append(seconds)
        rebuild = min(rebuilds)
        unchanged, _same = _build(scene)
    share = changed.duration / frames
    print(f"{frames} frames at {width}x{height}, {len(scene.standin.shots)} shots: full build {full:.2f} s "
          f"({1000 * full / frames:.1f} ms/frame); plain renders to MP4 {plain_mp4:.2f} s, to PNG {plain_png:.2f} s")
    print(f"  overhead ratio {full / plain_mp4:.2f} against plain MP4 renders (aim <= 1.3), "
          f"{full / plain_png:.2f} against plain PNG renders")
    print(f"  rebuild after {changed.name} changed ({changed.duration} frames, {100 * share:.0f} % of the cut): "
          f"{rebuild:.2f} s = {100 * rebuild / full:.0f} % of a full build (aim <= 30 %); "
          f"nothing changed: {unchanged:.2f} s = {100 * unchanged / full:.0f} %")
