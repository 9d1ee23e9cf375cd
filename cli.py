# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``standin`` command line: what the extension does, for scripts and newcomers.

    standin demo --out DIR      build the sample scene, save DIR/scene.blend, render a look
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
    return parser


def _start_blender():
    """Import bpy, start from factory settings and register StandIn; returns bpy."""
    import bpy

    from . import register

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "standin"):
        register()
    return bpy


def run_demo(out: pathlib.Path, preview_width: int = 960) -> int:
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
    bpy = _start_blender()
    from .addon import demo, preview

    scene = bpy.context.scene
    summary = demo.build_demo(scene)
    blend = out / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
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
            path = preview.render_shot_still(scene, shot, out / f"{shot.name}.png", width=preview_width)
            print(f"rendered {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args.out, args.preview_width)
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
