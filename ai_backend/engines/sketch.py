# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``sketch`` engine: pencil-and-ink storyboard frames straight from the control passes, on the CPU.

The look, layer by layer (``describe()`` repeats it for clients):

* **paper**: a light paper colour (``paper`` option) with a faint seeded grain;
* **toon-shaded depth**: the depth pass (inverse depth, near = white, 0 = nothing hit) cut into
  four flat grey washes: far stays paper, nearer is darker, as a storyboard artist shades the
  foreground; the two nearest washes also get diagonal pencil hatching whose offset, like the
  grain, comes from the take's seed (``seed + take - 1``), so takes differ only in the pencil;
* **characters**: each character's mask multiplies its colour (from shot.json, lightened so the
  shading still reads) over the washes, and its name sits in a small tag in that colour at the
  top of where it is seen (``labels``, default on), kept inside the frame;
* **ink**: the canny pass, slightly thickened, in near-black graphite over everything;
* **skeleton** (``skeleton``, default off): the OpenPose pass on top, only where it drew.

Deterministic: integer lookup tables and OpenCV operations only, no clock, PNG settings fixed, so
the same package and spec give byte-identical files. Fast: everything that does not depend on the
frame (wash, hatching, tint and ink tables; the take's grain and hatch textures) is built once per
job or take; a frame is a handful of whole-image ``cv2`` calls on uint8 data plus reading the
passes and writing one PNG.
"""

from __future__ import annotations

import pathlib
import struct
import zlib

import cv2
import numpy as np

from ..engine import EngineInputError, JobSpec, Progress, ProgressCallback, ResultFile, frames_of, take_folder

#: Paper colours by name (RGB).
PAPERS = {"white": (250, 248, 242), "cream": (246, 238, 220), "grey": (232, 232, 230)}
#: Upper bounds (exclusive) of the depth-pass values of each wash band, far to near; value 0 is
#: "nothing hit" and always paper.
BAND_EDGES = (64, 128, 192, 256)
#: Wash of each band as a multiplier ×255 of the paper colour, far (paper) to near (graphite).
WASHES = (255, 232, 208, 184)
#: How much a hatch stroke darkens each band (0–255), far to near.
HATCH_DARKNESS = (0, 0, 18, 34)
#: Hatch stroke spacing in pixels (45° lines), and the grain's amplitude (grey levels).
HATCH_PERIOD = 7
GRAIN = 6
#: Characters' colours are lightened toward white by this much before multiplying (0 = full colour).
TINT_LIGHTEN = 0.45
INK = (38, 34, 30)
#: zlib level of the PNGs (see ``png_bytes``): fixed, so the bytes never depend on library defaults.
PNG_LEVEL = 1

OPTIONS = {
    "skeleton": "bool (default false): draw the OpenPose pass over the frame",
    "labels": "bool (default true): name each character in a tag in its colour",
    "paper": f"paper colour: one of {', '.join(PAPERS)} (default white), or [r, g, b] with whole numbers 0–255",
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class SketchEngine:
    """Storyboard frames from depth, canny, masks (and OpenPose): see the module docstring."""

    name = "sketch"
    kind = "image"

    def describe(self) -> dict:
        return {
            "device": "cpu",
            "versions": {"numpy": np.__version__, "opencv": cv2.__version__},
            "passes": ["depth", "canny", "mask/<character>", "openpose (with skeleton)"],
            "options": dict(OPTIONS),
            "seeded": "paper grain and hatching offsets; take n uses seed + n - 1",
            "profiles": "preview and final give the same frames",
            "look": "toon-shaded depth washes on paper with pencil hatching, ink lines from canny, "
                    "characters tinted in their colour and named",
        }

    def check(self, package, spec: JobSpec) -> None:
        spec.check()
        options = _options(spec.options)
        needed = ["depth", "canny"] + (["openpose"] if options["skeleton"] else [])
        for kind in needed:
            if not package.has(kind):
                raise EngineInputError(f"the sketch engine needs the {kind} pass, and the package lacks it.")
        frames = frames_of(package, spec)
        for character in package.characters:
            name = str(character.get("name", ""))
            missing = [f for f in frames if not package.exists("mask", f, character=name)]
            if missing:
                raise EngineInputError(
                    f"the sketch engine needs the mask of {name} for every frame; mask/{name}/{missing[0]:04d}.png "
                    f"is missing ({len(missing)} frames)."
                )
            _colour(character)

    def run(self, package, spec: JobSpec, out_dir: pathlib.Path, progress: ProgressCallback) -> list[ResultFile]:
        self.check(package, spec)
        frames = frames_of(package, spec)
        style = Style(package, _options(spec.options))
        results, total, step = [], len(frames) * spec.takes, 0
        for take in range(1, spec.takes + 1):
            folder = pathlib.Path(out_dir) / take_folder(take)
            folder.mkdir(parents=True, exist_ok=True)
            pencil = Pencil(package.height, package.width, (spec.seed + take - 1) % 2**32)
            for frame in frames:
                image = style.render(package, frame, pencil)
                path = folder / f"{frame:04d}.png"
                _write_png(path, image)
                results.append(ResultFile(f"{take_folder(take)}/{path.name}", take, frame, "frame"))
                step += 1
                progress(Progress(step, total, frame, f"take {take}, frame {frame}"))
        return results


class Pencil:
    """What a take's seed decides: the paper grain and the hatch strokes (uint8 H×W textures)."""

    def __init__(self, height: int, width: int, seed: int):
        rng = np.random.default_rng(seed)
        # grain: fine speckle plus a soft mottle, as darkening in grey levels 0..GRAIN
        fine = rng.random((height, width), dtype=np.float32)
        mottle = cv2.resize(rng.random((height // 16 + 2, width // 16 + 2), dtype=np.float32), (width, height),
                            interpolation=cv2.INTER_CUBIC)
        grain = 0.65 * fine + 0.35 * mottle
        self.grain = np.clip(np.rint(grain * GRAIN), 0, GRAIN).astype(np.uint8)
        # hatching: 45° strokes, one pixel wide, offset by the seed, broken up like a pencil's tooth
        offset = int(rng.integers(HATCH_PERIOD))
        ys, xs = np.mgrid[0:height, 0:width]
        stroke = ((xs + ys + offset) % HATCH_PERIOD == 0).astype(np.float32)
        pressure = cv2.resize(rng.random((height // 8 + 2, width // 8 + 2), dtype=np.float32), (width, height),
                              interpolation=cv2.INTER_LINEAR)
        self.hatch = np.clip(np.rint(stroke * (0.55 + 0.45 * pressure) * 255), 0, 255).astype(np.uint8)


class Style:
    """The job's lookup tables: depth → wash and hatch darkness, character index → tint, ink."""

    def __init__(self, package, options: dict):
        self.options = options
        paper = np.array(options["paper"], dtype=np.float64)
        band = np.searchsorted(np.array(BAND_EDGES), np.arange(256), side="right")
        band[0] = 0  # nothing hit: paper
        self.wash = np.array(WASHES, dtype=np.uint8)[band].reshape(256, 1)
        self.hatch_darkness = np.array(HATCH_DARKNESS, dtype=np.uint8)[band].reshape(256, 1)
        self.names = [str(c["name"]) for c in package.characters]
        if len(self.names) > 254:
            raise EngineInputError("the sketch engine draws at most 254 characters.")
        # index image value → RGB multiplier of the wash: 0 = the paper, i = paper × character i's tint
        colours = np.tile(paper, (256, 1))
        self.label_colours = []
        for index, character in enumerate(package.characters, start=1):
            colour = np.array(_colour(character), dtype=np.float64)
            colours[index] = paper * (TINT_LIGHTEN + (1 - TINT_LIGHTEN) * colour)
            self.label_colours.append(tuple(int(c) for c in np.rint(np.clip(colour * 0.8, 0, 1) * 255)))
        self.tint = np.rint(np.clip(colours, 0, 255)).astype(np.uint8).reshape(256, 1, 3)
        self.ink = None  # the full-frame ink colour, made on the first frame (it needs the size)

    def render(self, package, frame: int, pencil: Pencil) -> np.ndarray:
        """One storyboard frame, RGB uint8 (H, W, 3)."""
        height, width = package.height, package.width
        depth = package.grey("depth", frame)
        # toon wash, grain and hatching, in grey (a multiplier of the colour below)
        shade = cv2.subtract(cv2.LUT(depth, self.wash), pencil.grain)
        shade = cv2.subtract(shade, cv2.multiply(pencil.hatch, cv2.LUT(depth, self.hatch_darkness), scale=1 / 255))
        # who is where: 0 = nobody, i = character i (a later character wins where masks overlap)
        who = np.zeros((height, width), np.uint8)
        masks = []
        for index, name in enumerate(self.names, start=1):
            mask = package.grey("mask", frame, name)
            cv2.threshold(mask, 127, 255, cv2.THRESH_BINARY, dst=mask)
            cv2.max(who, cv2.bitwise_and(mask, index), dst=who)
            masks.append(mask)
        colour = cv2.LUT(cv2.merge((who, who, who)), self.tint)
        image = cv2.multiply(cv2.merge((shade, shade, shade)), colour, scale=1 / 255)
        # ink, thickened by a pixel
        edges = cv2.threshold(package.grey("canny", frame), 127, 255, cv2.THRESH_BINARY)[1]
        edges = cv2.dilate(edges, _KERNEL)
        if self.ink is None or self.ink.shape != image.shape:
            self.ink = np.empty_like(image)
            self.ink[:] = INK
        cv2.copyTo(self.ink, edges, image)
        if self.options["skeleton"]:
            pose = package.image("openpose", frame)
            drawn = cv2.threshold(cv2.max(cv2.max(pose[..., 0], pose[..., 1]), pose[..., 2]), 0, 255,
                                  cv2.THRESH_BINARY)[1]
            cv2.copyTo(pose, drawn, image)
        if self.options["labels"]:
            for name, mask, colour in zip(self.names, masks, self.label_colours):
                draw_label(image, mask, name, colour)
        return image


_KERNEL = np.ones((2, 2), np.uint8)


def label_scale(height: int) -> tuple[float, int]:
    """Font scale and stroke thickness of the name tags for a frame ``height`` pixels high."""
    scale = float(np.clip(height / 640, 0.32, 1.1))
    return scale, 1 if scale < 0.75 else 2


def label_box(mask: np.ndarray, text: str, height: int, width: int):
    """Where a name tag goes: ((x0, y0, x1, y1) of the tag, (x, y) of the text baseline), or None.

    The tag sits just above the top of the character's mask, centred on the topmost part (the head),
    and is moved down or sideways as needed to stay inside the frame.
    """
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return None
    scale, thickness = label_scale(height)
    (text_width, text_height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, int(round(3 * scale)))
    box_w, box_h = text_width + 2 * pad, text_height + baseline + 2 * pad
    top_rows = mask[y:y + max(1, h // 8), x:x + w]
    columns = np.flatnonzero(top_rows.any(axis=0))
    centre = x + (int(columns[0]) + int(columns[-1])) // 2 if columns.size else x + w // 2
    x0 = int(np.clip(centre - box_w // 2, 0, max(0, width - box_w)))
    y0 = int(np.clip(y - 2 - box_h, 0, max(0, height - box_h)))
    return (x0, y0, x0 + box_w - 1, y0 + box_h - 1), (x0 + pad, y0 + pad + text_height)


def draw_label(image: np.ndarray, mask: np.ndarray, text: str, colour) -> None:
    """A tag in the character's colour with its name, at the top of its mask (if it is seen at all)."""
    placed = label_box(mask, text, *image.shape[:2])
    if placed is None:
        return
    (x0, y0, x1, y1), origin = placed
    scale, thickness = label_scale(image.shape[0])
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
    cv2.rectangle(image, (x0, y0), (x1, y1), INK, 1)
    cv2.putText(image, text, origin, _FONT, scale, label_text_colour(colour), thickness, cv2.LINE_AA)


def label_text_colour(colour) -> tuple[int, int, int]:
    """White on a dark tag, ink on a light one."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (255, 255, 255) if luminance < 150 else INK


def _options(options) -> dict:
    """The job's options with defaults filled in, or ``EngineInputError`` with what to fix."""
    if not isinstance(options, dict):
        raise EngineInputError("options must be an object of option names and values.")
    for key, value in options.items():
        if key not in OPTIONS:
            raise EngineInputError(f"the sketch engine has no option {key!r}; it knows {', '.join(OPTIONS)}.")
        if key in ("skeleton", "labels") and not isinstance(value, bool):
            raise EngineInputError(f"option {key!r} has the wrong type ({type(value).__name__}): use true or false.")
    paper = options.get("paper", "white")
    if isinstance(paper, str):
        if paper not in PAPERS:
            raise EngineInputError(f"paper {paper!r} is unknown; use one of {', '.join(PAPERS)} or [r, g, b].")
        paper = PAPERS[paper]
    elif isinstance(paper, (list, tuple)):
        if len(paper) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
                                      for c in paper):
            raise EngineInputError("paper as a colour must be [r, g, b] with whole numbers 0–255.")
        paper = tuple(paper)
    else:
        raise EngineInputError(f"option 'paper' has the wrong type ({type(paper).__name__}): "
                               f"use a name ({', '.join(PAPERS)}) or [r, g, b].")
    return {"skeleton": options.get("skeleton", False), "labels": options.get("labels", True), "paper": paper}


def _colour(character: dict) -> tuple[float, float, float]:
    """A character's RGB colour (0–1 floats) from shot.json; mid grey when it has none."""
    colour = character.get("color")
    if colour is None:
        return (0.5, 0.5, 0.5)
    if (not isinstance(colour, (list, tuple)) or len(colour) < 3
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in colour[:3])):
        raise EngineInputError(f"the colour of {character.get('name')} in shot.json must be [r, g, b(, a)] "
                               f"with numbers 0–1.")
    return tuple(float(min(1.0, max(0.0, c))) for c in colour[:3])


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB uint8 (H, W, 3) image as an 8-bit RGB PNG: no row filters, zlib level ``PNG_LEVEL``.

    Written here rather than by ``cv2.imencode`` because libpng's adaptive filtering costs more than
    it saves on flat washes with grain: unfiltered rows at level 1 are about twice as fast to encode
    and smaller. Every byte is fixed by the pixels and these settings (no time, no text chunks).
    """
    height, width, _ = image.shape
    rows = np.empty((height, width * 3 + 1), np.uint8)
    rows[:, 0] = 0  # filter type None for every row
    rows[:, 1:] = image.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, deflate, no interlace
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_LEVEL)), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png(path: pathlib.Path, image: np.ndarray) -> None:
    path.write_bytes(png_bytes(image))
