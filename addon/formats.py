# SPDX-License-Identifier: GPL-3.0-or-later
"""Picture formats a filmmaker names: aspect ratios, frame rates, sensors. Pure Python."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Aspect:
    key: str
    label: str
    ratio: float  # width / height


ASPECTS = (
    Aspect("2.39", "2.39:1 (anamorphic scope)", 2.39),
    Aspect("1.85", "1.85:1 (flat)", 1.85),
    Aspect("16:9", "16:9 (HD)", 16 / 9),
    Aspect("9:16", "9:16 (vertical)", 9 / 16),
    Aspect("4:5", "4:5 (portrait)", 4 / 5),
    Aspect("1:1", "1:1 (square)", 1.0),
)
ASPECT_BY_KEY = {a.key: a for a in ASPECTS}


@dataclass(frozen=True)
class FrameRate:
    key: str
    label: str
    fps: int
    fps_base: float

    @property
    def rate(self) -> float:
        return self.fps / self.fps_base


FRAME_RATES = (
    FrameRate("24", "24 fps", 24, 1.0),
    FrameRate("23.976", "23.976 fps (24000/1001)", 24, 1.001),
    FrameRate("25", "25 fps", 25, 1.0),
    FrameRate("29.97", "29.97 fps (30000/1001)", 30, 1.001),
    FrameRate("30", "30 fps", 30, 1.0),
)
FRAME_RATE_BY_KEY = {f.key: f for f in FRAME_RATES}


@dataclass(frozen=True)
class Sensor:
    key: str
    label: str
    width_mm: float


SENSORS = (
    Sensor("S35", "Super 35 (24.89 mm)", 24.89),
    Sensor("FF", "Full Frame (36 mm)", 36.0),
)
SENSOR_BY_KEY = {s.key: s for s in SENSORS}

#: Largest long edge we let a project ask for; diffusion models and the passes scale with it.
MAX_LONG_EDGE = 4096
MIN_LONG_EDGE = 64


def frame_size(aspect_key: str, long_edge: int, multiple: int = 8) -> tuple[int, int]:
    """Pixel size (width, height) for an aspect preset whose longer side is ``long_edge``.

    Both sides are rounded to a multiple of ``multiple`` (diffusion models work in 8-pixel
    latents), and the short side is never below ``multiple``.
    """
    if aspect_key not in ASPECT_BY_KEY:
        raise ValueError(f"unknown aspect {aspect_key!r}; use one of {', '.join(ASPECT_BY_KEY)}")
    if not MIN_LONG_EDGE <= long_edge <= MAX_LONG_EDGE:
        raise ValueError(f"resolution {long_edge}px is outside {MIN_LONG_EDGE}..{MAX_LONG_EDGE}px")
    ratio = ASPECT_BY_KEY[aspect_key].ratio

    def snap(value: float) -> int:
        return max(multiple, int(round(value / multiple)) * multiple)

    if ratio >= 1.0:
        return snap(long_edge), snap(long_edge / ratio)
    return snap(long_edge * ratio), snap(long_edge)


def timecode(frame: int, rate: FrameRate) -> str:
    """SMPTE non-drop timecode HH:MM:SS:FF for a 0-based frame count at ``rate``."""
    fps = rate.fps
    ff = frame % fps
    total_seconds = frame // fps
    return f"{total_seconds // 3600:02d}:{total_seconds // 60 % 60:02d}:{total_seconds % 60:02d}:{ff:02d}"
