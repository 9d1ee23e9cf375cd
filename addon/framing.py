# SPDX-License-Identifier: GPL-3.0-or-later
"""Shot framing maths: where a camera goes to frame a character at a named shot size. Pure Python.

Conventions (Blender's): Z up, metres; a camera looks down its local -Z with +Y up.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ShotSize:
    key: str
    label: str
    abbreviation: str


SHOT_SIZES = (
    ShotSize("EWS", "Extreme wide", "EWS"),
    ShotSize("WS", "Wide", "WS"),
    ShotSize("FS", "Full", "FS"),
    ShotSize("MS", "Medium", "MS"),
    ShotSize("MCU", "Medium close-up", "MCU"),
    ShotSize("CU", "Close-up", "CU"),
    ShotSize("ECU", "Extreme close-up", "ECU"),
)
SHOT_SIZE_BY_KEY = {s.key: s for s in SHOT_SIZES}

ANGLES = (
    ("EYE", "Eye level", "Camera at the character's eye height, level"),
    ("LOW", "Low angle", "Camera below the eyes looking up: the character feels strong"),
    ("HIGH", "High angle", "Camera above the eyes looking down: the character feels small"),
    ("OVERHEAD", "Overhead", "Camera straight above, looking down"),
    ("DUTCH", "Dutch", "Eye level with the horizon rolled: unease"),
)

VARIANTS = (
    ("SINGLE", "Single", "Frame one character"),
    ("TWO_SHOT", "Two-shot", "Frame two characters together"),
    ("OTS", "Over the shoulder", "Frame the second character over the first one's shoulder"),
)

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Subject:
    """What framing needs to know of a character, in world space (read off its stand-in).

    ``height`` is the standing height (the shot sizes scale with it, whatever the pose);
    ``facing`` is a horizontal unit vector, the way the character's body faces.
    """

    name: str
    height: float
    head_top: Vec3
    eyes: Vec3
    neck: Vec3
    feet: Vec3
    facing: Vec3
    right_shoulder: Vec3
    left_shoulder: Vec3
