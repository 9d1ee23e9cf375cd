# SPDX-License-Identifier: GPL-3.0-or-later
"""Sketch engine in-process at 512×512: frames/s, ours against a naive implementation of the same look.

The package is the demo's two-shot, its passes rendered at 512×512 (40 frames) with Blender; where
bpy is not installed (a backend-only machine) a synthetic package of the same size stands in. Ours:
``SketchEngine.run`` (lookup tables built once per job, the take's grain and hatching once per take,
whole-image uint8 OpenCV operations, one-channel pass reads, unfiltered level-1 PNGs). The baseline,
measured in the same run on the same frames, is the straightforward version of the same look:
passes read as RGB through ``ShotPackage``, grain and hatching made again for every frame, the
washes in float with ``np.select``, each character tinted by boolean indexing, PNGs by
``cv2.imwrite`` with its defaults. Both draw the same pixels (the line reports the largest
difference). Aim: ours >= 20 frames/s on a 2-core machine, speed-up >= 2.
"""

import pathlib
import statistics
import sys
import tempfile
import time

FRAMES = 40
ROUNDS = 3
SIZE = 512


def _demo_package(folder: pathlib.Path) -> tuple[pathlib.Path, str]:
    try:
        import bpy  # noqa: F401  (only to know whether Blender is here)
    except ImportError:
        return _synthetic_package(folder), "synthetic package"
    from standin.addon import demo, pass_pipeline
    from standin.addon.quiet import blender_output_silenced
    from standin.cli import start_blender

    scene = start_blender().context.scene
    demo.build_demo(scene)
    scene.standin.project.aspect = "1:1"
    scene.standin.project.resolution = SIZE
    shot = scene.standin.shots[1]  # SQ010_SH0020, the medium two-shot
    shot.frame_end = shot.frame_start + FRAMES - 1
    with blender_output_silenced():
        result = pass_pipeline.PassJob(scene, [shot.name], out_root=folder).run()[0]
    assert result.status == "rendered", result.message
    return result.package_dir, f"demo {shot.name}"


def _synthetic_package(folder: pathlib.Path) -> pathlib.Path:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
    from shot_packages import write_package

    return write_package(folder / "synthetic", frames=FRAMES, width=SIZE, height=SIZE)


def _ours(package, out: pathlib.Path, seed: int) -> float:
    from standin.ai_backend.engine import JobSpec
    from standin.ai_backend.engines.sketch import SketchEngine

    start = time.perf_counter()
    SketchEngine().run(package, JobSpec(seed=seed), out, lambda progress: None)
    return time.perf_counter() - start


def _naive_frame(package, frame: int, seed: int, options: dict):
    """One frame of the same look, computed the obvious way (see the module docstring)."""
    import cv2
    import numpy as np

    from standin.ai_backend.engines import sketch

    depth = package.image("depth", frame)[..., 0].astype(np.float32)
    pencil = sketch.Pencil(package.height, package.width, seed)  # the take's textures, made again
    bands = [depth == 0] + [(depth >= low) & (depth < high) for low, high in
                            zip((1,) + sketch.BAND_EDGES[:-1], sketch.BAND_EDGES)]
    wash = np.select(bands, [sketch.WASHES[0], *sketch.WASHES]).astype(np.float32)
    darkness = np.select(bands, [sketch.HATCH_DARKNESS[0], *sketch.HATCH_DARKNESS]).astype(np.float32)
    shade = np.clip(wash - pencil.grain, 0, 255)
    shade = np.clip(shade - np.rint(pencil.hatch * darkness / 255), 0, 255)
    paper = np.array(options["paper"], dtype=np.float32)
    image = shade[..., None] * paper / 255
    masks = []
    for character in package.characters:
        mask = package.mask(character["name"], frame)
        colour = np.array(sketch._colour(character), dtype=np.float32)
        tint = np.rint(paper * (sketch.TINT_LIGHTEN + (1 - sketch.TINT_LIGHTEN) * colour))
        image[mask] = shade[mask][:, None] * tint / 255
        masks.append(mask)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    edges = package.image("canny", frame)[..., 0] > 127
    edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
    image[edges] = sketch.INK
    if options["skeleton"]:
        pose = package.image("openpose", frame)
        drawn = pose.any(axis=2)
        image[drawn] = pose[drawn]
    if options["labels"]:
        for character, mask in zip(package.characters, masks):
            colour = np.array(sketch._colour(character))
            label = tuple(int(c) for c in np.rint(np.clip(colour * 0.8, 0, 1) * 255))
            sketch.draw_label(image, mask.astype(np.uint8) * 255, str(character["name"]), label)
    return image


def _naive(package, out: pathlib.Path, seed: int) -> float:
    import cv2

    from standin.ai_backend.engines import sketch

    options = sketch._options({})
    start = time.perf_counter()
    folder = out / "take01"
    folder.mkdir(parents=True, exist_ok=True)
    for frame in package.frames:
        image = _naive_frame(package, frame, seed, options)
        assert cv2.imwrite(str(folder / f"{frame:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return time.perf_counter() - start


def _largest_difference(ours: pathlib.Path, naive: pathlib.Path) -> int:
    import cv2
    import numpy as np

    worst = 0
    for path in sorted((ours / "take01").glob("*.png")):
        a = cv2.imread(str(path)).astype(np.int16)
        b = cv2.imread(str(naive / "take01" / path.name)).astype(np.int16)
        worst = max(worst, int(np.abs(a - b).max()))
    return worst


def run() -> None:
    from standin.ai_backend.package import ShotPackage

    seed = 7
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        package_dir, source = _demo_package(folder / "passes")
        package = ShotPackage.load(package_dir)
        _ours(package, folder / "warm", seed)  # warm-up: page cache, first-call costs out of both figures
        ours, naive = [], []
        for round_number in range(ROUNDS):
            ours.append(_ours(package, folder / f"ours{round_number}", seed))
            naive.append(_naive(package, folder / f"naive{round_number}", seed))
        difference = _largest_difference(folder / "ours0", folder / "naive0")
    frames = len(package.frames)
    ours_fps, naive_fps = frames / statistics.median(ours), frames / statistics.median(naive)
    print(f"sketch at {package.width}x{package.height}, {frames} frames ({source}): ours {ours_fps:.1f} frames/s, "
          f"naive same look {naive_fps:.1f} frames/s, speed-up {ours_fps / naive_fps:.2f}x "
          f"(largest pixel difference {difference})")
