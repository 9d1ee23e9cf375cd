# SPDX-License-Identifier: GPL-3.0-or-later
"""Control passes of the demo's two-character shot at 512×512: seconds per frame, ours against one render per pass.

Ours: one Cycles render per frame gives depth, normals and object index; the background-only passes
take one more render for the whole shot (the camera is static). The baseline, measured in the same
run with the same renderer and post-processing, renders once per pass: depth, normals, index and
the background, every frame. Aim: ratio >= 3, ours <= 0.25 s/frame on a 2-core machine.
"""

import pathlib
import tempfile
import time

FRAMES = 12


def _baseline(scene, shot, spec, out: pathlib.Path) -> float:
    from standin.addon import pass_images, pass_pipeline, scene_reader, shot_package
    from standin.addon.render_passes import FrameBuffers, PassRenderer

    staged = shot_package.StagedPackage(out / "baseline")
    hidden = scene_reader.stand_in_objects(scene, spec)
    seen = {c.name: False for c in spec.characters}
    depths = []
    start = time.perf_counter()
    with PassRenderer(scene, shot.camera, spec.width, spec.height, staged.staging / ".render") as renderer:
        for frame in spec.frames:
            buffers = FrameBuffers(
                depth=renderer.render_frame(frame).depth,
                normal=renderer.render_frame(frame).normal,
                object_index=renderer.render_frame(frame).object_index,
            )
            background = renderer.render_frame(frame, hidden=hidden)
            pass_pipeline.write_frame_passes(staged, spec, frame, buffers, seen)
            staged.write_image("canny_bg", frame, pass_images.canny_edges(background.normal, background.depth))
            depths += [buffers.depth, background.depth]
    rng = pass_images.depth_range(depths)
    for frame, depth in zip(spec.frames, depths[::2]):
        staged.write_image("depth", frame, pass_images.depth_control(depth, rng))
        staged.write_image("depth_raw", frame, pass_images.depth_raw(depth, pass_images.raw_scale_for(rng)))
    seconds = time.perf_counter() - start
    staged.discard()
    return seconds / len(spec.frames)


def _ours(scene, shot, out: pathlib.Path) -> tuple[float, float]:
    from standin.addon import pass_pipeline

    start = time.perf_counter()
    result = pass_pipeline.PassJob(scene, [shot.name], out_root=out / "ours", force=True).run()[0]
    assert result.status == "rendered", result.message
    return (time.perf_counter() - start) / result.frames, result.renders / result.frames


def run() -> None:
    from standin.cli import start_blender
    from standin.addon import demo, scene_reader
    from standin.addon.quiet import blender_output_silenced

    scene = start_blender().context.scene
    demo.build_demo(scene)
    scene.standin.project.aspect = "1:1"
    scene.standin.project.resolution = 512
    shot = scene.standin.shots[1]  # SQ010_SH0020, the medium two-shot
    shot.frame_end = shot.frame_start + FRAMES - 1
    spec = scene_reader.read_shot(scene, shot)
    with tempfile.TemporaryDirectory() as folder, blender_output_silenced():
        out = pathlib.Path(folder)
        _ours(scene, shot, out)  # warm-up: first-render costs (kernels, BVH) out of both figures
        ours, renders = _ours(scene, shot, out)
        baseline = _baseline(scene, shot, spec, out)
    print(f"{shot.name} at {spec.width}x{spec.height}, {FRAMES} frames, {len(spec.characters)} characters: "
          f"ours {ours:.3f} s/frame ({renders:.2f} renders/frame), one render per pass {baseline:.3f} s/frame, "
          f"speed-up {baseline / ours:.2f}x")
