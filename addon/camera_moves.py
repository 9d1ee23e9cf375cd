# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera moves over a shot's frame range, as per-frame keys with easing. Pure Python.

Each move is a function of how far along it is, shaped by an easing curve; poses use the
conventions of :mod:`framing` (Z up, camera looking down its local -Z).
"""

import math
from dataclasses import dataclass

import numpy as np

from .framing import CameraPlacement, Matrix4, Vec3, aim_rotation, matrix_world, rotation_angles

MOVES = (
    ("STATIC", "Static", "Locked-off camera"),
    ("PAN", "Pan", "Rotate left/right on the spot"),
    ("TILT", "Tilt", "Rotate up/down on the spot"),
    ("DOLLY_IN", "Dolly in", "Travel toward the subject"),
    ("DOLLY_OUT", "Dolly out", "Travel away from the subject"),
    ("TRUCK", "Truck", "Travel sideways, parallel to the subject"),
    ("ORBIT", "Orbit", "Circle around the subject, keeping it framed"),
    ("CRANE", "Crane", "Rise (or fall) while keeping the subject framed"),
    ("ZOOM", "Zoom", "Change the focal length on the spot"),
)

EASINGS = (
    ("LINEAR", "Linear", "Constant speed"),
    ("EASE_IN", "Ease in", "Start slow"),
    ("EASE_OUT", "Ease out", "End slow"),
    ("EASE_IN_OUT", "Ease in and out", "Start and end slow"),
)

#: The shortest focal length a zoom goes to (mm).
MIN_LENS_MM = 8.0
#: Without a pivot, moves turn about a point this far (m) in front of the camera.
DEFAULT_PIVOT_DISTANCE = 3.0

_MOVE_KEYS = tuple(key for key, _label, _description in MOVES)
_EASING_KEYS = tuple(key for key, _label, _description in EASINGS)


@dataclass(frozen=True)
class CameraKey:
    """The camera on one frame: its world matrix (row-major 4x4, like ``Object.matrix_world``)
    and focal length."""

    frame: int
    matrix_world: Matrix4
    lens_mm: float


def ease(easing: str, t: float) -> float:
    """How far along a move is at time ``t`` in [0, 1] (clamped): 0 at 0, 1 at 1, never going back.

    LINEAR is constant speed; EASE_IN starts slow (t squared); EASE_OUT ends slow; EASE_IN_OUT
    starts and ends slow (smoothstep, 3t^2 - 2t^3).
    """
    if easing not in _EASING_KEYS:
        raise ValueError(f"Unknown easing {easing!r}: pick one of {', '.join(_EASING_KEYS)}.")
    t = min(1.0, max(0.0, float(t)))
    if easing == "EASE_IN":
        return t * t
    if easing == "EASE_OUT":
        return 1.0 - (1.0 - t) ** 2
    if easing == "EASE_IN_OUT":
        return t * t * (3.0 - 2.0 * t)
    return t


def _turn_about_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)))


def _turn_about_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array(((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c)))


@dataclass(frozen=True)
class _Pose:
    """A camera pose during a move: rotation (camera axes as columns), location and lens."""

    rotation: np.ndarray
    location: np.ndarray
    lens_mm: float


def _crane(start: _Pose, rise: float, pivot: np.ndarray) -> _Pose:
    """Raise the camera by ``rise`` metres, re-aimed (pan and tilt, roll kept) so ``pivot``
    keeps its place in frame."""
    location = start.location + np.array((0.0, 0.0, rise))
    seen = start.rotation.T @ (pivot - start.location)
    forward_z = -start.rotation[2, 2]
    if seen[2] >= 0 or abs(forward_z) > 0.999:  # pivot behind, or looking straight up/down
        return _Pose(start.rotation, location, start.lens_mm)
    _heading, _pitch, roll = rotation_angles(start.rotation)
    rotation = aim_rotation((seen[0] / -seen[2], seen[1] / -seen[2]), pivot - location, roll)
    return _Pose(rotation, location, start.lens_mm)


def _pose_at(start: _Pose, move: str, amount: float, pivot: np.ndarray) -> _Pose:
    """The camera after ``amount`` of ``move`` (degrees, metres or millimetres) from ``start``."""
    rotation, location = start.rotation, start.location
    forward, right = -rotation[:, 2], rotation[:, 0]
    if move == "PAN":
        return _Pose(_turn_about_z(math.radians(amount)) @ rotation, location, start.lens_mm)
    if move == "TILT":
        return _Pose(rotation @ _turn_about_x(math.radians(amount)), location, start.lens_mm)
    if move == "DOLLY_IN":
        return _Pose(rotation, location + amount * forward, start.lens_mm)
    if move == "DOLLY_OUT":
        return _Pose(rotation, location - amount * forward, start.lens_mm)
    if move == "TRUCK":
        return _Pose(rotation, location + amount * right, start.lens_mm)
    if move == "ORBIT":
        turn = _turn_about_z(math.radians(amount))
        return _Pose(turn @ rotation, pivot + turn @ (location - pivot), start.lens_mm)
    if move == "CRANE":
        return _crane(start, amount, pivot)
    if move == "ZOOM":
        return _Pose(rotation, location, max(MIN_LENS_MM, start.lens_mm + amount))
    return start  # STATIC


def move_keys(placement: CameraPlacement, move: str, amount: float, frame_start: int, frame_end: int,
              easing: str = "EASE_IN_OUT", pivot: Vec3 | None = None) -> list[CameraKey]:
    """One camera key per frame from ``frame_start`` to ``frame_end`` inclusive for ``move``.

    ``amount`` is degrees for PAN (positive turns left, counter-clockwise seen from above,
    about world Z at the camera), TILT (positive looks up, about the camera's own X) and
    ORBIT (positive counter-clockwise seen from above, about the vertical through ``pivot``,
    which keeps its place in frame); metres for DOLLY_IN/DOLLY_OUT (along/against the view),
    TRUCK (positive to screen right) and CRANE (positive rises, re-aimed so ``pivot`` keeps
    its place in frame); millimetres added to the focal length for ZOOM (never below
    ``MIN_LENS_MM``). ``pivot`` defaults to ``DEFAULT_PIVOT_DISTANCE`` in front of the camera.
    STATIC gives a single key at ``frame_start``. Raises ValueError for a frame range that
    ends before it starts or an unknown move or easing.
    """
    if move not in _MOVE_KEYS:
        raise ValueError(f"Unknown camera move {move!r}: pick one of {', '.join(_MOVE_KEYS)}.")
    if easing not in _EASING_KEYS:
        raise ValueError(f"Unknown easing {easing!r}: pick one of {', '.join(_EASING_KEYS)}.")
    if frame_end < frame_start:
        raise ValueError(f"The shot ends (frame {frame_end}) before it starts (frame {frame_start}): "
                         "set its end after its start.")
    start = _Pose(np.array(placement.rotation), np.array(placement.location), float(placement.lens_mm))
    if move == "STATIC":
        return [CameraKey(frame_start, placement.matrix_world, placement.lens_mm)]
    if pivot is None:
        pivot_point = start.location + DEFAULT_PIVOT_DISTANCE * -start.rotation[:, 2]
    else:
        pivot_point = np.asarray(pivot, dtype=float)
    span = frame_end - frame_start
    keys = []
    for frame in range(frame_start, frame_end + 1):
        progress = ease(easing, (frame - frame_start) / span) if span else 0.0
        pose = _pose_at(start, move, progress * amount, pivot_point)
        keys.append(CameraKey(frame, matrix_world(pose.rotation, pose.location), pose.lens_mm))
    return keys
