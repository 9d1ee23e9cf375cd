# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``sketch`` engine: storyboard frames straight from the control passes, on the CPU.

The look: paper-white background, the depth pass toon-shaded into a few flat grey washes (near is
darker, as a pencil artist shades the foreground), ink lines from the canny pass, each character
washed in its colour with its name in a small label, and optionally the OpenPose skeleton on top.
Deterministic (same package, spec and seed → the same bytes) and fast: lookup tables and whole-
image numpy/OpenCV operations, no per-pixel Python.
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

from ..engine import EngineInputError, JobSpec, Progress, ProgressCallback, ResultFile, frames_of, take_folder

#: Flat wash levels from far to near (paper white to graphite).
_WASH_LEVELS = np.array([248, 234, 216, 198, 182], dtype=np.float32)
_INK = np.array([38, 34, 30], dtype=np.uint8)
_PAPERS = {"white": (250, 248, 242), "cream": (246, 238, 220), "grey": (232, 232, 230)}
_OPTIONS = {"skeleton": bool, "labels": bool, "paper": (str, list)}
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def _shade_table(paper: tuple[int, int, int]) -> np.ndarray:
    """Depth grey (0..255, near = white) → RGB wash, as a 256×3 lookup table; 0 (no hit) is paper."""
    levels = np.clip(np.floor(np.arange(256) / 256 * len(_WASH_LEVELS)).astype(int), 0, len(_WASH_LEVELS) - 1)
    grey = _WASH_LEVELS[levels] / 255.0
    table = np.outer(grey, np.array(paper, dtype=np.float32))
    table[0] = paper
    return np.clip(table, 0, 255).astype(np.uint8)


def _grain(height: int, width: int, seed: int) -> np.ndarray:
    """Paper grain for a take: a small seeded noise, the same for every frame of the take."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return (noise * 3.0)[..., None]


class SketchEngine:
    name = "sketch"
    kind = "image"

    def describe(self) -> dict:
        return {
            "device": "cpu",
            "versions": {"numpy": np.__version__, "opencv": cv2.__version__},
            "options": {"skeleton": "bool, draw the OpenPose pass on top", "labels": "bool, name each character",
                        "paper": f"one of {', '.join(_PAPERS)} or [r, g, b]"},
        }

    def _paper(self, spec: JobSpec) -> tuple[int, int, int]:
        paper = spec.options.get("paper", "white")
        if isinstance(paper, str):
            return _PAPERS[paper]
        return tuple(int(c) for c in paper)

    def check(self, package, spec: JobSpec) -> None:
        spec.check()
        for key, value in spec.options.items():
            if key not in _OPTIONS:
                raise EngineInputError(f"the sketch engine has no option {key!r}; it knows {', '.join(_OPTIONS)}.")
            if not isinstance(value, _OPTIONS[key]) or (key != "paper" and not isinstance(value, bool)):
                raise EngineInputError(f"option {key!r} has the wrong type ({type(value).__name__}).")
        paper = spec.options.get("paper", "white")
        if isinstance(paper, str) and paper not in _PAPERS:
            raise EngineInputError(f"paper {paper!r} is unknown; use one of {', '.join(_PAPERS)} or [r, g, b].")
        if isinstance(paper, list) and (len(paper) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in paper)):
            raise EngineInputError("paper as a colour must be [r, g, b] with whole numbers 0–255.")
        needed = ["depth", "canny"] + (["openpose"] if spec.options.get("skeleton") else [])
        for kind in needed:
            if not package.has(kind):
                raise EngineInputError(f"the sketch engine needs the {kind} pass, and the package lacks it.")
        frames_of(package, spec)

    def run(self, package, spec: JobSpec, out_dir: pathlib.Path, progress: ProgressCallback) -> list[ResultFile]:
        frames = frames_of(package, spec)
        table = _shade_table(self._paper(spec))
        tints = [_tint(c) for c in package.characters]
        results, total = [], len(frames) * spec.takes
        step = 0
        for take in range(1, spec.takes + 1):
            folder = pathlib.Path(out_dir) / take_folder(take)
            folder.mkdir(parents=True, exist_ok=True)
            grain = _grain(package.height, package.width, spec.seed * 1009 + take)
            for frame in frames:
                image = self.frame(package, frame, table, tints, grain, spec.options)
                path = folder / f"{frame:04d}.png"
                if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), _PNG):
                    raise OSError(f"could not write {path}")
                results.append(ResultFile(f"{take_folder(take)}/{path.name}", take, frame, "frame"))
                step += 1
                progress(Progress(step, total, frame))
        return results

    def frame(self, package, frame: int, table, tints, grain, options) -> np.ndarray:
        depth = package.image("depth", frame)[..., 0]
        image = table[depth].astype(np.float32)
        image += grain
        for character, tint in zip(package.characters, tints):
            mask = package.mask(character["name"], frame)
            if mask.any():
                image[mask] *= tint
        edges = package.image("canny", frame)[..., 0] > 127
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        image = np.clip(image, 0, 255).astype(np.uint8)
        image[edges] = _INK
        if options.get("skeleton"):
            skeleton = package.image("openpose", frame)
            drawn = skeleton.max(axis=2) > 0
            image[drawn] = skeleton[drawn]
        if options.get("labels", True):
            for character in package.characters:
                _label(image, package.mask(character["name"], frame), character["name"], _label_color(character))
        return image


def _tint(character: dict) -> np.ndarray:
    """A multiply wash toward the character's colour (kept light, so shading still reads)."""
    color = np.array(character.get("color", [1, 1, 1])[:3], dtype=np.float32)
    return 0.45 + 0.55 * color


def _label_color(character: dict) -> tuple[int, int, int]:
    color = np.array(character.get("color", [0.3, 0.3, 0.3])[:3], dtype=np.float32)
    return tuple(int(c) for c in np.clip(color * 200, 0, 255))


def _label(image: np.ndarray, mask: np.ndarray, text: str, color) -> None:
    """The character's name in a small box at the top of where it is seen, kept inside the frame."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    columns = np.flatnonzero(mask[rows[0]: rows[0] + max(1, rows.size // 4)].any(axis=0))
    height, width = image.shape[:2]
    scale = max(0.3, min(0.8, height / 700))
    thickness = 1
    (text_width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(np.clip((columns[0] + columns[-1]) // 2 - text_width // 2, 2, max(2, width - text_width - 4)))
    y = int(np.clip(rows[0] - 4, text_height + 4, height - baseline - 2))
    cv2.rectangle(image, (x - 2, y - text_height - 3), (x + text_width + 2, y + baseline), (252, 252, 250), -1)
    cv2.rectangle(image, (x - 2, y - text_height - 3), (x + text_width + 2, y + baseline), color, 1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)
