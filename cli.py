# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``standin`` command line: what the extension does, for scripts and newcomers.

    standin demo --out DIR      build the sample scene, save DIR/scene.blend, render a look and its passes,
                                generate every shot with the sketch engine into takes (DIR/standin/<shot>/v001)
    standin passes SCENE.blend [--shot NAME | --all] [--out DIR] [--scale 0.5]
                                render each shot's control passes into a shot package
    standin generate SCENE.blend [--shot NAME | --all] [--backend URL | --engine sketch]
                                [--profile preview|final] [--takes N]
                                generate takes of shots (//standin/<shot>/v001/…) and save the .blend
    standin animatic SCENE.blend [--out animatic.mp4] [--board board.pdf] [--otio cut.otio] [--scale 0.5]
                                the animatic (every shot in order, its take or a playblast, sound, burn-ins)
                                as an MP4, the storyboard sheet as a PDF (+ PNG), the cut as OTIO (+ EDL)
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
    demo.add_argument("--no-generate", action="store_true",
                      help="stop after the passes (no local backend, no takes)")
    demo.add_argument("--animatic-scale", type=float, default=0.5,
                      help="size of the demo's animatic against the project resolution (0 to skip it, "
                           "its board and its OTIO)")
    passes = commands.add_parser("passes", help="render control passes (depth, canny, OpenPose, masks) of shots")
    passes.add_argument("blend", type=pathlib.Path, help="the .blend file")
    which = passes.add_mutually_exclusive_group()
    which.add_argument("--shot", action="append", metavar="NAME", help="a shot to render (repeatable)")
    which.add_argument("--all", action="store_true", help="every shot (the default)")
    passes.add_argument("--out", type=pathlib.Path, help="write DIR/<shot>/ instead of the project output folder")
    passes.add_argument("--scale", type=float, default=1.0, help="pass size against the project resolution")
    passes.add_argument("--force", action="store_true", help="render even shots whose inputs did not change")
    generate = commands.add_parser("generate", help="generate takes of shots on a backend and record them")
    generate.add_argument("blend", type=pathlib.Path, help="the .blend file (saved with the new takes)")
    which = generate.add_mutually_exclusive_group()
    which.add_argument("--shot", action="append", metavar="NAME", help="a shot to generate (repeatable)")
    which.add_argument("--all", action="store_true", help="every shot (the default); unchanged shots are skipped")
    where = generate.add_mutually_exclusive_group()
    where.add_argument("--backend", metavar="URL", help="a running backend (default: the project's backend URL)")
    where.add_argument("--engine", choices=("sketch",),
                       help="start a local backend with this engine for the run (no GPU, no downloads)")
    generate.add_argument("--token", help="the backend's token (default: the project's)")
    generate.add_argument("--profile", choices=("preview", "final"), help="default: the project's profile")
    generate.add_argument("--takes", type=int, default=None, metavar="N",
                          help="variations per shot, each with its own seed (default: the project's)")
    generate.add_argument("--force", action="store_true", help="generate even shots whose inputs did not change")
    generate.add_argument("--passes-scale", type=float, default=1.0, help="pass size against the project resolution")
    animatic = commands.add_parser("animatic", help="build the animatic MP4, and the board PDF and OTIO cut when asked")
    animatic.add_argument("blend", type=pathlib.Path, help="the .blend file (left unchanged)")
    animatic.add_argument("--out", type=pathlib.Path,
                          help="the MP4 (default: animatic.mp4 in the project output folder)")
    animatic.add_argument("--board", type=pathlib.Path,
                          help="also write the storyboard sheet here (PDF; a PNG beside it)")
    animatic.add_argument("--otio", type=pathlib.Path,
                          help="also write the cut here as OpenTimelineIO (an EDL beside it)")
    animatic.add_argument("--scale", type=float, default=0.5, help="picture size against the project resolution")
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


def run_demo(out: pathlib.Path, preview_width: int = 960, passes_scale: float = 0.5, generate: bool = True,
             animatic_scale: float = 0.5) -> int:
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
        if generate and demo_generate(bpy, scene, passes_scale) != 0:
            return 1
    if animatic_scale > 0:
        from .addon import animatic

        root = animatic.output_root(scene)
        return make_animatic(scene, None, root / "board.pdf", root / "cut.otio", animatic_scale)
    return 0


def make_animatic(scene, out: pathlib.Path | None, board: pathlib.Path | None, otio: pathlib.Path | None,
                  scale: float) -> int:
    """Build the animatic (and the board and OTIO when given paths), printing progress and paths."""
    from .addon import animatic
    from .addon.board import BoardError
    from .addon.otio_export import OtioError

    job = animatic.AnimaticJob(scene, out, scale)
    interactive = sys.stderr.isatty()
    while _quietly(job.tick):
        if job.progress is not None and interactive:
            print(_progress_bar(job.progress), end="", file=sys.stderr, flush=True)
    if interactive:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)
    result = job.result
    for problem in result.problems:
        print(f"  warning: {problem}", file=sys.stderr)
    if not result.ok:
        print(f"standin: animatic: {result.message}", file=sys.stderr)
        return 1
    edit = result.edit
    print(f"animatic: {len(edit.events)} shots, {edit.running_time} ({edit.total_frames} frames at "
          f"{edit.rate.label()}), {edit.width}x{edit.height}, {len(result.playblasts_rendered)} playblasts and "
          f"{len(result.segments_encoded)} shots rendered -> {result.path}")
    try:
        if board is not None:
            board = board.resolve()
            for path in _quietly(animatic.export_board, scene, edit, board, board.with_suffix(".png")):
                print(f"board: {path}")
        if otio is not None:
            path, edl, notes = animatic.export_otio(scene, edit, otio.resolve())
            print(f"otio: {path}")
            if edl is not None:
                print(f"edl: {edl}")
            for note in notes:
                print(f"  note: {note}", file=sys.stderr)
    except (BoardError, OtioError, OSError) as error:
        print(f"standin: {error}", file=sys.stderr)
        return 1
    return 0


def run_animatic(args) -> int:
    opened = _open_blend(args.blend)
    if opened is None:
        return 2
    _bpy, scene = opened
    if _chosen_shots(scene, args.blend, None) is None:
        return 2
    if not 0.05 <= args.scale <= 1.0:
        print(f"standin: --scale {args.scale} is out of range: use a value between 0.05 and 1.", file=sys.stderr)
        return 2
    return make_animatic(scene, args.out.resolve() if args.out else None, args.board, args.otio, args.scale)


def demo_generate(bpy, scene, passes_scale: float) -> int:
    """The demo's last step: every shot through a local sketch backend into takes, saved in the .blend."""
    return generate_and_save(bpy, scene, [s.name for s in scene.standin.shots], local_engine="sketch",
                             local_failure="the demo's takes need the local backend: ", passes_scale=passes_scale)


def generate_and_save(bpy, scene, names: list[str], *, local_engine: str | None = None, url: str = "",
                      token: str = "", local_failure: str = "", **options) -> int:
    """Generate ``names`` — through a local backend with ``local_engine`` started for the run, else
    the backend at ``url`` — then save the .blend with its takes; 0 when every shot got its take."""
    from .addon import generation

    project = scene.standin.project
    configured_url = project.backend_url
    local = None
    if local_engine:
        from .addon import local_backend

        try:
            local = local_backend.LocalBackend(engine=local_engine).start()
        except local_backend.LocalBackendError as error:
            print(f"standin: {local_failure}{error}", file=sys.stderr)
            return 1
        url, token = local.url, ""
    try:
        summary = generate_shots(scene, names, url, token, **options)
    finally:
        generation.close_workers()
        if local is not None:
            local.stop()
            project.backend_url = configured_url  # the local backend's port is gone after this run
    _quietly(bpy.ops.wm.save_mainfile)
    return 0 if summary.ok else 1


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


def _open_blend(blend: pathlib.Path):
    """Start Blender with ``blend`` open; returns (bpy, scene) or prints why not and returns None."""
    if not blend.is_file():
        print(f"standin: {blend} is not a file: give the path of a .blend.", file=sys.stderr)
        return None
    bpy = start_blender()
    try:
        _quietly(bpy.ops.wm.open_mainfile, filepath=str(blend.resolve()))
    except RuntimeError as error:
        print(f"standin: cannot open {blend}: {error}", file=sys.stderr)
        return None
    return bpy, bpy.context.scene


def _chosen_shots(scene, blend, names: list[str] | None) -> list[str] | None:
    available = [s.name for s in scene.standin.shots]
    if not available:
        print(f"standin: {blend} has no StandIn shots: add shots in Blender (StandIn tab) first.", file=sys.stderr)
        return None
    unknown = [name for name in names or [] if name not in available]
    if unknown:
        print(f"standin: no shot named {', '.join(unknown)} in {blend}; it has {', '.join(available)}.",
              file=sys.stderr)
        return None
    return names or available


def generate_shots(scene, names: list[str], url: str, token: str, profile: str | None = None,
                   variations: int | None = None, force: bool = False, passes_scale: float = 1.0):
    """Generate ``names`` against the backend at ``url``, printing progress; returns the batch summary."""
    from .addon import generation

    project = scene.standin.project
    worker = generation.worker_for(url, token, project.backend_timeout)
    project.backend_url = url
    batch = generation.GenerationBatch(scene, names, force=force, variations=variations, profile=profile,
                                       worker=worker, pass_scale=passes_scale)
    interactive = sys.stderr.isatty()
    shown = ""
    while _quietly(batch.step):
        if interactive:
            done, total, what = batch.progress
            line = f"\r{what[:60]:<60} {100 * done // max(1, total):3d}%"
            if line != shown:
                print(line, end="", file=sys.stderr, flush=True)
                shown = line
        if not batch.passes.busy:
            import time

            time.sleep(0.02)
    if interactive:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr)
    for name in names:
        shot = scene.standin.shots.get(name)
        if shot is None:
            continue
        take = shot.active_take
        if name in batch.summary.generated and take is not None:
            print(f"{name}: {take.name} seed {take.seed} ({take.engine}) -> {bpy_abspath(take.folder)}")
        elif name in batch.summary.skipped:
            print(f"{name}: unchanged since {take.name if take else 'its take'}")
        elif shot.generation in ("FAILED", "LOST", "CANCELLED"):
            print(f"{name}: {shot.generation}: {shot.job_message}", file=sys.stderr)
    for message in batch.summary.messages:
        print(f"  {message}", file=sys.stderr)
    print(batch.summary.line())
    return batch.summary


def bpy_abspath(path: str) -> str:
    import bpy

    return bpy.path.abspath(path)


def run_generate(args) -> int:
    opened = _open_blend(args.blend)
    if opened is None:
        return 2
    bpy, scene = opened
    names = _chosen_shots(scene, args.blend, args.shot)
    if names is None:
        return 2
    if args.takes is not None and not 1 <= args.takes <= 8:
        print("standin: --takes must be between 1 and 8.", file=sys.stderr)
        return 2
    project = scene.standin.project
    token = args.token if args.token is not None else project.backend_token
    return generate_and_save(bpy, scene, names, local_engine=args.engine, url=args.backend or project.backend_url,
                             token=token, profile=args.profile, variations=args.takes, force=args.force,
                             passes_scale=args.passes_scale)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args.out, args.preview_width, args.passes_scale, not args.no_generate, args.animatic_scale)
    if args.command == "passes":
        return run_passes(args.blend, args.shot, args.out, args.scale, args.force)
    if args.command == "generate":
        return run_generate(args)
    if args.command == "animatic":
        return run_animatic(args)
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
