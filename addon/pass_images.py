# SPDX-License-Identifier: GPL-3.0-or-later
"""Render passes to ControlNet control images: depth, raw depth, edges, masks. Pure Python (NumPy + OpenCV).

Input buffers are NumPy arrays with row 0 at the TOP of the image (a Blender buffer, stored
bottom-up, is flipped by whoever reads it): depth (H, W) float, planar view-axis distance in
metres with +inf (or Blender's 1e10) where nothing was hit; world normals (H, W, 3 or 4) float
in [-1, 1]; object index (H, W) float or int, the objects' ``pass_index``. Outputs are uint8
(RGB where they have three channels) or uint16 for raw depth.

Depth control images use one ``DepthRange`` for the whole shot, so a surface keeps its grey
level from frame to frame (no flicker as things move in and out of the frame).
"""

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

# ---- depth ---------------------------------------------------------------------------------

#: How ``depth_control`` encodes depth: MiDaS-like normalised inverse depth, near plane white.
DEPTH_ENCODING = "inverse_depth_near_white"
#: Grey level (fraction of white) of geometry at or beyond the far plane: above the black of
#: the empty background, so geometry never merges with it.
FAR_PLANE_LEVEL = 0.05
#: Depths at or beyond this are "nothing was hit" (Blender writes 1e10 there).
NO_HIT_DEPTH = 1.0e9
#: ``depth_range`` looks at about this many depth samples over a whole shot at most.
RANGE_SAMPLE_BUDGET = 4_000_000
RANGE_MIN_SAMPLES_PER_FRAME = 16_384
#: Widening factor for a shot whose depths are all the same.
FLAT_RANGE_WIDENING = 1.05

MILLIMETRE = 0.001
UINT16_MAX = 65535
#: ``raw_scale_for`` keeps the far plane at or below this many units (60 m in millimetres),
#: leaving headroom for the 1 % of depths beyond the far percentile.
RAW_FAR_UNITS = 60_000


@dataclass(frozen=True)
class DepthRange:
    """Near and far depth in metres, 0 < near < far, that a shot's depth images are scaled to."""

    near: float
    far: float

    def __post_init__(self):
        if not (0.0 < self.near < self.far < math.inf):
            raise ValueError(f"A depth range needs 0 < near < far < inf; got near={self.near}, far={self.far}.")


def hit_mask(depth: np.ndarray) -> np.ndarray:
    """True where the render hit something: a finite, positive depth below ``NO_HIT_DEPTH``."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0.0) & (depth < NO_HIT_DEPTH)


def _depth_samples(depth_frames: Sequence[np.ndarray]) -> np.ndarray:
    """The hit depths of every frame, evenly thinned so a long shot stays within the sample budget."""
    per_frame = max(RANGE_MIN_SAMPLES_PER_FRAME, RANGE_SAMPLE_BUDGET // max(len(depth_frames), 1))
    samples = []
    for depth in depth_frames:
        hits = np.asarray(depth, dtype=np.float64)[hit_mask(depth)]
        stride = max(1, math.ceil(hits.size / per_frame))
        samples.append(hits[::stride])
    return np.concatenate(samples) if samples else np.empty(0)


def depth_range(depth_frames: Sequence[np.ndarray], low_pct: float = 1.0, high_pct: float = 99.0) -> DepthRange:
    """The shot's depth range: the ``low_pct`` and ``high_pct`` percentiles of the hit depths of ALL frames.

    Percentiles rather than min/max, so a stray far pixel or the camera grazing a wall does not
    squash everything else into a few grey levels. A shot whose depths are all equal gets a
    range widened around that depth.
    """
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"Percentiles must satisfy 0 <= low < high <= 100; got {low_pct} and {high_pct}.")
    samples = _depth_samples(depth_frames)
    if samples.size == 0:
        raise ValueError("The shot shows no geometry: no frame has a single pixel with a finite depth.")
    near, far = (float(value) for value in np.percentile(samples, [low_pct, high_pct]))
    if far <= near * (1.0 + 1e-6):
        near, far = near / FLAT_RANGE_WIDENING, far * FLAT_RANGE_WIDENING
    return DepthRange(near=near, far=far)


def inverse_depth_fraction(depth: np.ndarray, rng: DepthRange) -> np.ndarray:
    """Normalised inverse depth, 1 at the near plane and 0 at the far plane, clipped to [0, 1] (float64).

    Pixels with no hit read 0, like the far plane; ``hit_mask`` tells them apart.
    """
    hits = hit_mask(depth)
    hit_depth = np.where(hits, np.asarray(depth, dtype=np.float64), rng.far)
    inverse_near, inverse_far = 1.0 / rng.near, 1.0 / rng.far
    fraction = (1.0 / hit_depth - inverse_far) / (inverse_near - inverse_far)
    return np.clip(fraction, 0.0, 1.0)


def depth_control(depth: np.ndarray, rng: DepthRange) -> np.ndarray:
    """The depth ControlNet image (H, W, 3) uint8: near white, far dark grey, no hit black.

    Encoding ``DEPTH_ENCODING``: grey = round(255 * (FAR_PLANE_LEVEL + (1 - FAR_PLANE_LEVEL) * f))
    with f the normalised inverse depth of ``inverse_depth_fraction``: 255 at or before the near
    plane, 13 at or beyond the far plane, 0 where nothing was hit. It depends only on the depth
    and ``rng``, so the same depth gives the same grey in every frame of a shot.
    """
    level = FAR_PLANE_LEVEL + (1.0 - FAR_PLANE_LEVEL) * inverse_depth_fraction(depth, rng)
    grey = np.where(hit_mask(depth), np.rint(255.0 * level), 0.0).astype(np.uint8)
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def depth_raw(depth: np.ndarray, metres_per_unit: float = MILLIMETRE) -> np.ndarray:
    """Metric depth as (H, W) uint16 in units of ``metres_per_unit``: 0 = no hit, clipped to 1..65535 otherwise.

    Rounded to the nearest unit, so it reads back (value * metres_per_unit) within half a unit.
    """
    if not metres_per_unit > 0.0:
        raise ValueError(f"metres_per_unit must be positive, got {metres_per_unit}.")
    hits = hit_mask(depth)
    units = np.rint(np.where(hits, np.asarray(depth, dtype=np.float64), 0.0) / metres_per_unit)
    return np.where(hits, np.clip(units, 1, UINT16_MAX), 0).astype(np.uint16)


def _nice_scales() -> Iterable[float]:
    """1, 2, 5 x 10^k metres per unit, from millimetres up."""
    exponent = -3
    while True:
        for mantissa in (1, 2, 5):
            yield round(mantissa * 10.0**exponent, 12)
        exponent += 1


def raw_scale_for(rng: DepthRange) -> float:
    """Metres per unit for a shot's ``depth_raw``: millimetres unless far > 60 m, else the finest 1-2-5 step that fits."""
    for scale in _nice_scales():
        if rng.far <= RAW_FAR_UNITS * scale * (1.0 + 1e-9):
            return scale
    raise AssertionError("unreachable")


# ---- edges ---------------------------------------------------------------------------------

#: 8-bit levels per unit of natural-log depth in the depth-edge image: a 10 % depth jump is a
#: step of 38 levels, a strong edge at the default thresholds, while a floor seen at a grazing
#: angle changes by far less per pixel.
LOG_DEPTH_LEVELS = 400.0
#: The background (no hit) counts as this many times farther than the farthest hit.
BACKGROUND_DEPTH_FACTOR = 2.0
#: A pixel is off-plane when the second difference of inverse depth across it exceeds this
#: fraction of the inverse depth (about a 1 % depth jump; planes give 0, however steep).
NON_PLANAR_RATIO = 0.01
#: Edge fragments with fewer 8-connected pixels than this are specks and are dropped.
MIN_EDGE_PIXELS = 3


def normal_image(normal: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """World normals as an (H, W, 3) uint8 image, each axis -1..1 mapped to 0..255; black where nothing was hit."""
    unit_normals = np.nan_to_num(np.asarray(normal, dtype=np.float32)[:, :, :3], nan=0.0)
    levels = np.rint((np.clip(unit_normals, -1.0, 1.0) + 1.0) * 127.5)
    return np.where(hits[:, :, np.newaxis], levels, 0.0).astype(np.uint8)


def normal_edges(normal: np.ndarray, hits: np.ndarray, low: int, high: int) -> np.ndarray:
    """Canny on the normal image: creases and silhouettes. OpenCV's Canny takes, per pixel, the
    channel with the largest gradient, so a change of any normal axis makes an edge."""
    return cv2.Canny(normal_image(normal, hits), low, high)


def depth_discontinuities(depth: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """True within a pixel of a depth jump, False on any plane however steeply it recedes.

    On a plane, inverse planar depth is an affine function of the pixel position, so its second
    difference along x and along y is zero; a jump (or a crease) makes it large. The measure is
    that second difference relative to the largest inverse depth of the three pixels; the
    background counts as inverse depth 0 (infinitely far). Dilated by a pixel so a jump spread
    over two pixels by anti-aliasing still covers the pixel Canny marks.
    """
    inverse_depth = np.where(hits, 1.0 / np.where(hits, np.asarray(depth, dtype=np.float64), 1.0), 0.0)
    padded = np.pad(inverse_depth, 1, mode="reflect", reflect_type="odd")  # linear continuation
    centre = padded[1:-1, 1:-1]
    worst_ratio = np.zeros_like(centre)
    for before, after in ((padded[1:-1, :-2], padded[1:-1, 2:]), (padded[:-2, 1:-1], padded[2:, 1:-1])):
        second_difference = np.abs(before - 2.0 * centre + after)
        largest = np.maximum(np.maximum(before, centre), after)
        worst_ratio = np.maximum(worst_ratio, second_difference / np.maximum(largest, 1e-30))
    off_plane = (worst_ratio > NON_PLANAR_RATIO).astype(np.uint8)
    return cv2.dilate(off_plane, np.ones((3, 3), dtype=np.uint8)) > 0


def depth_edges(depth: np.ndarray, hits: np.ndarray, low: int, high: int) -> np.ndarray:
    """Depth jumps: Canny on log depth scaled by ``LOG_DEPTH_LEVELS`` (same thresholds as an 8-bit
    image), kept only at ``depth_discontinuities``, so a receding floor's smooth depth ramp
    draws no line where the frame cuts it."""
    if not hits.any():
        return np.zeros(hits.shape, dtype=np.uint8)
    log_depth = np.log(np.where(hits, np.asarray(depth, dtype=np.float64), 1.0))
    background_log_depth = log_depth[hits].max() + math.log(BACKGROUND_DEPTH_FACTOR)
    levels = (np.where(hits, log_depth, background_log_depth) * LOG_DEPTH_LEVELS).astype(np.float32)
    gradient_x, gradient_y = (_sobel_int16(levels, dx, dy) for dx, dy in ((1, 0), (0, 1)))
    edges = cv2.Canny(gradient_x, gradient_y, low, high)
    return np.where(depth_discontinuities(depth, hits), edges, 0).astype(np.uint8)


def _sobel_int16(levels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """3x3 Sobel derivative of ``levels``, rounded and saturated to int16 for ``cv2.Canny(dx, dy, ...)``."""
    gradient = cv2.Sobel(levels, cv2.CV_32F, dx, dy, ksize=3, borderType=cv2.BORDER_REPLICATE)
    limits = np.iinfo(np.int16)
    return np.clip(np.rint(gradient), limits.min, limits.max).astype(np.int16)


def thin_edges(edges: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a 0/255 edge image to 1-pixel, 8-connected lines (uint8 0/255)."""
    image = np.pad(edges > 0, 1).astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for sub_iteration in (0, 1):
            centre = image[1:-1, 1:-1]
            # Neighbours P2..P9, clockwise from north.
            p2, p3, p4 = image[:-2, 1:-1], image[:-2, 2:], image[1:-1, 2:]
            p5, p6, p7 = image[2:, 2:], image[2:, 1:-1], image[2:, :-2]
            p8, p9 = image[1:-1, :-2], image[:-2, :-2]
            ring = (p2, p3, p4, p5, p6, p7, p8, p9, p2)
            neighbour_count = sum(p.astype(np.int32) for p in ring[:-1])
            transitions = sum(((a == 0) & (b == 1)).astype(np.int32) for a, b in zip(ring[:-1], ring[1:]))
            if sub_iteration == 0:
                spare = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                spare = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            deletable = (2 <= neighbour_count) & (neighbour_count <= 6) & (transitions == 1) & spare
            removable = (centre == 1) & deletable
            if removable.any():
                centre[removable] = 0
                changed = True
    return image[1:-1, 1:-1] * np.uint8(255)


def drop_specks(edges: np.ndarray, min_pixels: int) -> np.ndarray:
    """``edges`` without the 8-connected fragments of fewer than ``min_pixels`` pixels."""
    if min_pixels <= 1:
        return edges
    _, labels, stats, _ = cv2.connectedComponentsWithStats((edges > 0).astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False  # label 0 is the empty background
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def canny_edges(
    normal: np.ndarray,
    depth: np.ndarray,
    low: int = 50,
    high: int = 150,
    min_edge_pixels: int = MIN_EDGE_PIXELS,
) -> np.ndarray:
    """Clean line art of the blocking, (H, W) uint8 0/255: silhouettes and creases, nothing inside flat faces.

    Recipe: Canny (hysteresis thresholds ``low``/``high``, Sobel 3x3, L1 gradient) on the world
    normals mapped to 0..255 per axis (background black), OR Canny with the same thresholds on
    log depth scaled by ``LOG_DEPTH_LEVELS`` levels (background counted as twice the farthest
    hit) where ``depth_discontinuities`` finds a jump rather than a receding plane; then Zhang-Suen thinning to 1-pixel lines and dropping fragments under
    ``min_edge_pixels`` pixels. Geometry rendering is noise-free, so no pre-blur is needed.
    """
    hits = hit_mask(depth)
    combined = normal_edges(normal, hits, low, high) | depth_edges(depth, hits, low, high)
    return drop_specks(thin_edges(combined), min_edge_pixels)


# ---- masks ---------------------------------------------------------------------------------


def _index_image(object_index: np.ndarray) -> np.ndarray:
    """The object-index pass as (H, W) integers (the first channel of a multi-channel buffer)."""
    index = np.asarray(object_index)
    if index.ndim == 3:
        index = index[:, :, 0]
    if index.ndim != 2:
        raise ValueError(f"An object-index pass is (H, W) or (H, W, C); got shape {index.shape}.")
    return np.rint(np.nan_to_num(index.astype(np.float64), nan=0.0)).astype(np.int64)


def object_mask(object_index: np.ndarray, pass_index: int) -> np.ndarray:
    """(H, W) uint8: 255 where the object with ``pass_index`` is visible, else 0."""
    return np.where(_index_image(object_index) == int(pass_index), 255, 0).astype(np.uint8)


def background_mask(object_index: np.ndarray, character_indices: Sequence[int]) -> np.ndarray:
    """(H, W) uint8: 255 where no character is visible (set and empty background), 0 on the characters."""
    on_character = np.isin(_index_image(object_index), [int(i) for i in character_indices])
    return np.where(on_character, 0, 255).astype(np.uint8)
