# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``standin`` command line: what the extension does, for scripts and newcomers.

    standin demo --out DIR      build the sample scene, save DIR/scene.blend, render a look and its passes
    standin passes SCENE.blend [--shot NAME | --all] [--out DIR] [--scale 0.5]
                                render each shot's control passes into a shot package
"""

import argparse
import os
import pathlib
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="standin", description="StandIn previs tools (headless Blender)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="build the sample scene and save it as DIR/scene.blend")
    demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("demo-out"), help="output folder")
    demo.add_argument("--preview-width", type=int, default=960,
                      help="width of the look-through-the-camera renders (0 to skip them)")
    demo.add_argument("--passes-scale", type=float, default=0.5,
                      help="scale of the demo shots' passes against the project resolution (0 to skip them)")
    passes = commands.add_parser("passes", help="render control passes (depth, canny, OpenPose, masks) of shots")
    passes.add_argument("blend", type=pathlib.Path, help="the .blend file")
    which = passes.add_mutually_exclusive_group()
    which.add_argument("--shot", action="append", metavar="NAME", help="a shot to render (repeatable)")
    which.add_argument("--all", action="store_true", help="every shot (the default)")
    passes.add_argument("--out", type=pathlib.Path, help="write DIR/<shot>/ instead of the project output folder")
    passes.add_argument("--scale", type=float, default=1.0, help="pass size against the project resolution")
    passes.add_argument("--force", action="store_true", help="render even shots whose inputs did not change")
    return parser


def _quietly(function, *args, **kwargs):
    """Call ``function`` with Blender's own log lines (per render, per save) kept off stdout."""
    from .addon.quiet import blender_output_silenced

    with blender_output_silenced():
        return function(*args, **kwargs)


def start_blender():
    """Import bpy, start from factory settings and register StandIn; returns bpy."""
    import bpy

    from . import register

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "standin"):
        register()
    return bpy


def run_demo(out: pathlib.Path, preview_width: int = 960, passes_scale: float = 0.5) -> int:
    out = out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".standin-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        print(f"standin: cannot write to {out}: {error.strerror or error}. Pick another --out folder.",
              file=sys.stderr)
        return 1
    bpy = start_blender()
    from .addon import demo, preview

    scene = bpy.context.scene
    summary = demo.build_demo(scene)
    blend = out / "scene.blend"
    _quietly(bpy.ops.wm.save_as_mainfile, filepath=str(blend), check_existing=False)
    print(summary.headline())
    print(f"  characters: {', '.join(summary.characters)}")
    print(f"  set '{demo.SET_NAME}': {', '.join(summary.pieces)}")
    for shot in scene.standin.shots:
        subjects = ", ".join(s.name for s in shot.subjects)
        print(f"  {shot.name}  {shot.shot_size:>3} {shot.lens:>4.0f} mm  {shot.angle:<5} {shot.move:<8} "
              f"frames {shot.frame_start}-{shot.frame_end}  on {subjects}")
    print(f"saved {blend}")
    if preview_width > 0:
        for shot in scene.standin.shots:
            path = _quietly(preview.render_shot_still, scene, shot, out / f"{shot.name}.png", width=preview_width)
            print(f"rendered {path}")
    if passes_scale > 0:
        results = render_passes(scene, [s.name for s in scene.standin.shots], None, passes_scale)
        if not all(r.ok for r in results):
            return 1
    return 0


def _progress_bar(progress, width: int = 30) -> str:
    filled = int(width * progress.done / max(1, progress.total))
    return f"\r{progress.shot} [{'#' * filled}{'-' * (width - filled)}] {progress.done}/{progress.total} {progress.stage:<16}"


def render_passes(scene, names: list[str], out_root, scale: float, force: bool = False):
    """Render the passes of ``names`` with a progress bar on stderr; prints one line per shot."""
    from .addon import pass_pipeline

    job = pass_pipeline.PassJob(scene, names, out_root, scale, force)
    interactive = sys.stderr.isatty()
    reported = 0
    while _quietly(job.tick):
        if job.progress is not None and interactive:
            print(_progress_bar(job.progress), end="", file=sys.stderr, flush=True)
        while reported < len(job.results):
            _report(job.results[reported], interactive)
            reported += 1
    while reported < len(job.results):
        _report(job.results[reported], interactive)
        reported += 1
    return job.results


def _report(result, interactive: bool) -> None:
    if interactive:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)
    if result.status == "rendered":
        print(f"{result.shot}: {result.frames} frames, {result.renders} renders, "
              f"{result.seconds / max(1, result.frames):.2f} s/frame -> {result.package_dir}")
    elif result.ok:
        print(f"{result.shot}: {result.message} ({result.package_dir})")
    else:
        print(f"{result.shot}: FAILED: {result.message}", file=sys.stderr)
    for warning in result.warnings:
        print(f"  warning: {warning}", file=sys.stderr)


def run_passes(blend: pathlib.Path, shots: list[str] | None, out: pathlib.Path | None, scale: float,
               force: bool) -> int:
    if not blend.is_file():
        print(f"standin: {blend} is not a file: give the path of a .blend.", file=sys.stderr)
        return 2
    bpy = start_blender()
    try:
        _quietly(bpy.ops.wm.open_mainfile, filepath=str(blend.resolve()))
    except RuntimeError as error:
        print(f"standin: cannot open {blend}: {error}", file=sys.stderr)
        return 2
    scene = bpy.context.scene
    available = [s.name for s in scene.standin.shots]
    if not available:
        print(f"standin: {blend} has no StandIn shots: add shots in Blender (StandIn tab) first.", file=sys.stderr)
        return 2
    unknown = [name for name in shots or [] if name not in available]
    if unknown:
        print(f"standin: no shot named {', '.join(unknown)} in {blend}; it has {', '.join(available)}.",
              file=sys.stderr)
        return 2
    results = render_passes(scene, shots or available, out.resolve() if out else None, scale, force)
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} of {len(results)} shots have passes"
          + (f"; failed: {', '.join(r.shot for r in failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args.out, args.preview_width, args.passes_scale)
    if args.command == "passes":
        return run_passes(args.blend, args.shot, args.out, args.scale, args.force)
    return 2


def console_main() -> None:
    """Entry point of the ``standin`` console script.

    Once Blender is loaded, leave with ``os._exit``: the Blender 4.5 module hangs in interpreter
    shutdown (after its leak report) when its output is not a terminal, which would stall
    scripts and render farms that run this command.
    """
    code = main()
    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
