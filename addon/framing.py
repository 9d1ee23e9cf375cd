# SPDX-License-Identifier: GPL-3.0-or-later
"""Shot framing maths: where a camera goes to frame a character at a named shot size. Pure Python.

Conventions (Blender's): Z up, metres; a camera looks down its local -Z with +Y up.
"""

import math
from dataclasses import dataclass, replace

import numpy as np


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


# --------------------------------------------------------------------------------------------
# Shot-size rules and promises
# --------------------------------------------------------------------------------------------

EYES_ON_THIRD = 2.0 / 3.0


@dataclass(frozen=True)
class SizeRule:
    """How the camera is solved for a shot size: two heights of the character pinned on screen.

    Sizes from MS in put the eyes at ``eyes_y`` and cut the frame's bottom edge
    ``cut_below_eyes`` x the standing height below the eyes, so the cut follows the body
    (a seated character's medium shot still cuts at the waist). Whole-figure sizes (FS, WS,
    EWS) pin the top of the head at ``head_top_y`` and the feet at ``feet_y``. Heights are
    normalised frame heights, 0 at the bottom edge, 1 at the top.
    """

    cut_below_eyes: float | None = None
    eyes_y: float = EYES_ON_THIRD
    head_top_y: float | None = None
    feet_y: float | None = None

    @property
    def whole_figure(self) -> bool:
        return self.cut_below_eyes is None

    def frame_height_m(self, height: float) -> float:
        """How much of the character, in metres, the frame height spans at this size."""
        if self.whole_figure:
            return height / (self.head_top_y - self.feet_y)
        return self.cut_below_eyes * height / self.eyes_y

    def looser(self, factor: float) -> "SizeRule":
        """The same composition with the frame ``factor`` times taller (the camera further back)."""
        if self.whole_figure:
            middle = (self.head_top_y + self.feet_y) / 2
            half = (self.head_top_y - self.feet_y) / 2 / factor
            return SizeRule(head_top_y=middle + half, feet_y=middle - half)
        return SizeRule(cut_below_eyes=self.cut_below_eyes * factor, eyes_y=self.eyes_y)


#: Where each size pins the character (standing proportions: eyes 0.94, chin 0.875,
#: shoulders 0.82, chest 0.72, waist 0.58 of the height).
SIZE_RULES = {
    "EWS": SizeRule(head_top_y=0.42, feet_y=0.30),  # a speck on the lower third: figure 12 % of the frame
    "WS": SizeRule(head_top_y=0.65, feet_y=0.25),  # figure 40 % of the frame, feet near the lower third
    "FS": SizeRule(head_top_y=0.91, feet_y=0.07),  # whole body, a little head and foot room
    "MS": SizeRule(cut_below_eyes=0.36),  # cuts at the waist
    "MCU": SizeRule(cut_below_eyes=0.22),  # cuts mid-chest
    "CU": SizeRule(cut_below_eyes=0.14),  # cuts the upper chest, just under the collarbones
    "ECU": SizeRule(cut_below_eyes=0.07),  # eyes to chin, the top of the head cropped
}

Band = tuple[float, float]
ANYWHERE: Band = (-math.inf, math.inf)


@dataclass(frozen=True)
class SizeBand:
    """What a shot size promises on screen: the projected height (y) of landmarks.

    Each band is an inclusive (low, high) range of normalised frame height; ``figure_height``
    is head_top y minus feet y. At eye level and dutch every band holds for any lens, sensor
    and aspect. Low and high angles keep the pinned landmarks (eyes from MS in; head top and
    feet for whole-figure sizes) while perspective may carry the others out of their band.
    Overhead shots look down on the character and have no bands.
    """

    head_top: Band
    eyes: Band
    feet: Band
    figure_height: Band = ANYWHERE

    def misses(self, head_top_y: float, eyes_y: float, feet_y: float) -> list[str]:
        """The landmarks outside their band (empty when the framing keeps the promise)."""
        checks = {
            "head_top": (head_top_y, self.head_top),
            "eyes": (eyes_y, self.eyes),
            "feet": (feet_y, self.feet),
            "figure_height": (head_top_y - feet_y, self.figure_height),
        }
        return [name for name, (value, (low, high)) in checks.items() if not low <= value <= high]


SIZE_BANDS = {
    "EWS": SizeBand(head_top=(0.30, 0.60), eyes=(0.28, 0.60), feet=(0.15, 0.45), figure_height=(0.04, 0.20)),
    "WS": SizeBand(head_top=(0.45, 0.85), eyes=(0.43, 0.85), feet=(0.10, 0.40), figure_height=(0.25, 0.55)),
    "FS": SizeBand(head_top=(0.85, 0.97), eyes=(0.78, 0.96), feet=(0.02, 0.12), figure_height=(0.73, 0.95)),
    "MS": SizeBand(head_top=(0.72, 0.92), eyes=(0.62, 0.72), feet=(-math.inf, 0.0)),
    "MCU": SizeBand(head_top=(0.78, 1.0), eyes=(0.62, 0.72), feet=(-math.inf, 0.0)),
    "CU": SizeBand(head_top=(0.86, 1.1), eyes=(0.62, 0.72), feet=(-math.inf, 0.0)),
    "ECU": SizeBand(head_top=(1.0, math.inf), eyes=(0.62, 0.72), feet=(-math.inf, 0.0)),
}


# --------------------------------------------------------------------------------------------
# Angles and composition constants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AngleRule:
    """A camera angle as the line of sight from the lens to the character's eyes.

    ``sightline_deg`` > 0 looks up at the eyes (camera below them), < 0 looks down.
    ``roll_deg`` rolls the camera about its view axis (positive: the horizon runs downhill
    to the right).
    """

    sightline_deg: float
    roll_deg: float = 0.0


ANGLE_RULES = {
    "EYE": AngleRule(sightline_deg=0.0),
    "LOW": AngleRule(sightline_deg=18.0),
    "HIGH": AngleRule(sightline_deg=-28.0),
    "DUTCH": AngleRule(sightline_deg=0.0, roll_deg=15.0),
}
OVERHEAD = "OVERHEAD"

#: How far off centre (fraction of frame width) a character sits to leave room for its look.
LEAD_ROOM = 1.0 / 6.0
#: A character turned less than this from the lens looks into it and is centred.
NEARLY_INTO_LENS_DEG = 10.0
#: A two-shot keeps both characters' eyes within [edge, 1 - edge] of the frame width.
TWO_SHOT_EDGE = 0.2
#: An over-the-shoulder puts the foreground shoulder this far in from its frame edge...
OTS_SHOULDER_X = 0.2
#: ...and, when the angle alone would drop it out of frame, this high in the frame.
OTS_SHOULDER_Y = 0.15
#: The foreground shoulder stays at least this much (m) nearer the camera than the framed eyes...
OTS_MIN_SEPARATION = 0.1
#: ...and at least this far (m) in front of the lens, so the camera stands behind, not inside, the character.
OTS_MIN_SHOULDER_DEPTH = 0.35
#: The camera heading is searched this far (degrees) either side of a plan-view first guess.
OTS_HEADING_SPREAD_DEG = 24.0
#: Over-the-shoulder framings loosen by this factor per step, at most this many steps, when the lens is too wide.
OTS_LOOSEN_FACTOR = 1.2
OTS_LOOSEN_STEPS = 12
#: An over-the-shoulder may miss the requested angle by this much (degrees) before it warns.
OTS_ANGLE_TOLERANCE_DEG = 8.0
#: The lowest a low-angle camera goes, in metres above the floor the characters stand on.
LOW_MIN_CAMERA_HEIGHT = 0.3
#: An overhead camera stays at least this far above the top of the highest head (m).
OVERHEAD_CLEARANCE = 0.3
#: How much the tilt that puts the eyes on their third may change the character's distance
#: across the frame, as a fraction of the camera distance; lens shift does the rest (``_optics_for``).
KEYSTONE_LIMIT = 0.1
#: Points nearer than this to the lens (m) do not count as "in front of the camera".
MIN_DEPTH = 0.01
#: Nearer than this (m) to the eyes most lenses cannot focus and a face distorts: warn.
CLOSE_FOCUS_M = 0.25

_SIZE_KEYS = tuple(s.key for s in SHOT_SIZES)
_ANGLE_KEYS = tuple(key for key, _label, _description in ANGLES)
_VARIANT_KEYS = tuple(key for key, _label, _description in VARIANTS)
_UP = np.array((0.0, 0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Camera placement and projection
# --------------------------------------------------------------------------------------------

Matrix4 = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class CameraPlacement:
    """Where a shot camera stands and what lens it carries, ready for a Blender camera.

    ``matrix_world`` is row-major 4x4 like ``Object.matrix_world``: columns 0..2 are the
    camera's X (screen right), Y (screen up) and Z (backwards) axes in world space, column 3
    its location. Sensor fit is horizontal: ``sensor_width_mm`` spans the frame width.
    ``warning`` is a sentence for the user when the framing could not keep a promise.
    """

    matrix_world: Matrix4
    lens_mm: float
    sensor_width_mm: float
    aspect: float
    shift_x: float = 0.0
    shift_y: float = 0.0
    warning: str = ""

    @property
    def location(self) -> Vec3:
        return tuple(row[3] for row in self.matrix_world[:3])

    @property
    def rotation(self) -> tuple[Vec3, Vec3, Vec3]:
        """The 3x3 rotation, row-major (columns are the camera axes)."""
        return tuple(tuple(row[:3]) for row in self.matrix_world[:3])

    @property
    def right(self) -> Vec3:
        return tuple(row[0] for row in self.matrix_world[:3])

    @property
    def up(self) -> Vec3:
        return tuple(row[1] for row in self.matrix_world[:3])

    @property
    def forward(self) -> Vec3:
        """The view direction (the camera's local -Z) in world space."""
        return tuple(-row[2] for row in self.matrix_world[:3])

    @property
    def sensor_height_mm(self) -> float:
        return self.sensor_width_mm / self.aspect


def matrix_world(rotation: np.ndarray, location: np.ndarray) -> Matrix4:
    """A row-major 4x4 matrix from a 3x3 rotation (camera axes as columns) and a location."""
    rows = [tuple(float(v) for v in rotation[i]) + (float(location[i]),) for i in range(3)]
    return tuple(rows) + ((0.0, 0.0, 0.0, 1.0),)


def project(point: Vec3, placement: CameraPlacement) -> tuple[float, float, float]:
    """Where ``point`` lands in the frame, like ``bpy_extras.object_utils.world_to_camera_view``.

    x and y are normalised over the frame ((0, 0) bottom-left, (1, 1) top-right; outside
    [0, 1] is out of frame); z is the distance in front of the camera along the view axis
    (negative behind). Lens shift is in fractions of the frame width (horizontal sensor fit).
    """
    rotation = np.array(placement.rotation)
    local = rotation.T @ (np.asarray(point, dtype=float) - np.array(placement.location))
    depth = float(-local[2])
    if depth == 0.0:
        return (0.5, 0.5, 0.0)
    scale_x = placement.lens_mm / placement.sensor_width_mm
    scale_y = placement.lens_mm / placement.sensor_height_mm
    x = 0.5 + local[0] / depth * scale_x - placement.shift_x
    y = 0.5 + local[1] / depth * scale_y - placement.shift_y * placement.aspect
    return (float(x), float(y), depth)


def camera_rotation(heading: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """The 3x3 rotation of a camera whose view heads ``heading`` radians counter-clockwise
    from world +X, pitched ``pitch`` radians up and rolled ``roll`` radians (positive: the
    horizon runs downhill to the right). Columns: camera X, Y, Z in world space."""
    forward = np.array((math.cos(pitch) * math.cos(heading), math.cos(pitch) * math.sin(heading), math.sin(pitch)))
    level_right = np.array((math.sin(heading), -math.cos(heading), 0.0))
    level_up = np.cross(level_right, forward)
    right = math.cos(roll) * level_right + math.sin(roll) * level_up
    up = -math.sin(roll) * level_right + math.cos(roll) * level_up
    return np.column_stack((right, up, -forward))


def rotation_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(heading, pitch, roll) in radians of a camera rotation; inverse of ``camera_rotation``
    (undefined heading and roll when the camera looks straight up or down)."""
    forward = -rotation[:, 2]
    pitch = math.asin(max(-1.0, min(1.0, float(forward[2]))))
    heading = math.atan2(float(forward[1]), float(forward[0]))
    level_right = np.array((math.sin(heading), -math.cos(heading), 0.0))
    level_up = np.cross(level_right, forward)
    roll = math.atan2(float(rotation[:, 0] @ level_up), float(rotation[:, 0] @ level_right))
    return heading, pitch, roll


def aim_rotation(view_tangents: tuple[float, float], world_direction, roll: float) -> np.ndarray:
    """The rotation, rolled by ``roll``, whose camera-space direction (tan_x, tan_y, -1)
    points along ``world_direction``: what keeps a point at its place in frame.

    Exact unless the direction is too steep for that place in frame (then the nearest pitch).
    """
    tan_x, tan_y = view_tangents
    rolled_x = tan_x * math.cos(roll) - tan_y * math.sin(roll)
    rolled_y = tan_x * math.sin(roll) + tan_y * math.cos(roll)
    direction = np.asarray(world_direction, dtype=float)
    elevation = math.atan2(direction[2], math.hypot(direction[0], direction[1]))
    # Elevation of the view direction: sin(pitch) + rolled_y cos(pitch) = sin(elevation) |d|.
    reach = math.sin(elevation) * math.sqrt(1.0 + rolled_x**2 + rolled_y**2) / math.sqrt(1.0 + rolled_y**2)
    pitch = math.asin(max(-1.0, min(1.0, reach))) - math.atan(rolled_y)
    seen = camera_rotation(0.0, pitch, roll) @ np.array((tan_x, tan_y, -1.0))
    heading = math.atan2(direction[1], direction[0]) - math.atan2(seen[1], seen[0])
    return camera_rotation(heading, pitch, roll)


def bands_met(subject: Subject, placement: CameraPlacement, size: str) -> list[str]:
    """The landmarks ``placement`` shows outside the band ``size`` promises for ``subject``.

    Empty when the framing keeps the promise. A landmark behind the lens counts as out of
    the picture below the frame (feet under a close-up may be).
    """

    def height_in_frame(point: Vec3) -> float:
        _x, y, depth = project(point, placement)
        return y if depth > 0 else -math.inf

    return SIZE_BANDS[size].misses(*(height_in_frame(p) for p in (subject.head_top, subject.eyes, subject.feet)))


# --------------------------------------------------------------------------------------------
# The solver: a fixed rotation makes the camera position a linear problem
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Optics:
    lens_mm: float
    sensor_width_mm: float
    aspect: float
    shift_y: float = 0.0

    @property
    def sensor_height_mm(self) -> float:
        return self.sensor_width_mm / self.aspect

    def tangent(self, axis: int, screen: float) -> float:
        """Camera-space x/depth (axis 0) or y/depth (axis 1) of a normalised screen coordinate."""
        if axis == 0:
            return (screen - 0.5) * self.sensor_width_mm / self.lens_mm
        return (screen - 0.5 + self.shift_y * self.aspect) * self.sensor_height_mm / self.lens_mm

    def placement(self, rotation: np.ndarray, location: np.ndarray, warning: str = "") -> CameraPlacement:
        return CameraPlacement(matrix_world(rotation, location), self.lens_mm, self.sensor_width_mm,
                               self.aspect, shift_y=self.shift_y, warning=warning)


def _eye_line_y(rule: SizeRule, subject: Subject) -> float:
    """Where the size puts the character's eyes on screen (straight-on, without perspective)."""
    if not rule.whole_figure:
        return rule.eyes_y
    span = subject.head_top[2] - subject.feet[2]
    if span <= 0:  # lying down: no eye line to speak of
        return (rule.head_top_y + rule.feet_y) / 2
    share = (subject.eyes[2] - subject.feet[2]) / span
    return rule.feet_y + share * (rule.head_top_y - rule.feet_y)


def _optics_for(rule: SizeRule, subject: Subject, lens_mm: float, sensor_width_mm: float,
                aspect: float) -> _Optics:
    """The optics for framing ``subject`` at a size: lens shift moves the eye line off centre
    when tilting alone would distort.

    A camera at eye height tilts to put the eyes where the size wants them. With a wide lens in a
    tall frame that tilt grows large (22 degrees for 18 mm in 9:16) while the camera stands
    very close, and the tilt stretches the head out of the frame. The tilt is kept to what
    changes the character's distance across the frame height by at most ``KEYSTONE_LIMIT``
    of the camera distance (sin tilt <= limit x lens / sensor height); lens shift does the
    rest, as on an architectural camera. Normal lenses in wide frames need no shift.
    """
    optics = _Optics(float(lens_mm), float(sensor_width_mm), float(aspect))
    max_tilt = math.asin(min(1.0, KEYSTONE_LIMIT * optics.lens_mm / optics.sensor_height_mm))
    tilt_reach = math.tan(max_tilt) * optics.lens_mm / optics.sensor_height_mm  # in frame heights
    off_centre = _eye_line_y(rule, subject) - 0.5
    left_to_shift = math.copysign(max(0.0, abs(off_centre) - tilt_reach), off_centre)
    return replace(optics, shift_y=-left_to_shift / optics.aspect or 0.0)


@dataclass(frozen=True)
class _Target:
    """A world point pinned at a normalised screen coordinate on one axis (0 = x, 1 = y)."""

    point: np.ndarray
    axis: int
    screen: float


@dataclass(frozen=True)
class _Solution:
    rotation: np.ndarray
    location: np.ndarray
    exact: bool = True


def _position_meeting(targets: list[_Target], rotation: np.ndarray, optics: _Optics) -> np.ndarray | None:
    """The camera location that puts three targets on their screen coordinates, or None.

    With q = R^T C and p = R^T P, a target gives (p_a - q_a) + t (p_z - q_z) = 0, linear in q.
    None when the targets do not fix the position or one would sit behind the lens.
    """
    matrix = np.zeros((3, 3))
    rhs = np.zeros(3)
    local_points = []
    for row, target in enumerate(targets):
        local = rotation.T @ target.point
        tangent = optics.tangent(target.axis, target.screen)
        matrix[row, target.axis] = 1.0
        matrix[row, 2] = tangent
        rhs[row] = local[target.axis] + tangent * local[2]
        local_points.append(local)
    try:
        local_camera = np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        return None
    if any(local_camera[2] - local[2] < MIN_DEPTH for local in local_points):
        return None
    return rotation @ local_camera


def _roots_by_scan(function, low: float, high: float, steps: int, iterations: int = 48) -> tuple[list, list]:
    """Sample ``function`` (returns (value, residual) or None) and refine every sign change.

    Returns (roots, samples): roots as (x, value), samples as (x, value, residual) for the
    valid samples, so a caller can fall back to the nearest miss.
    """
    xs = np.linspace(low, high, steps)
    evaluated = [(x, function(x)) for x in xs]
    samples = [(x, result[0], result[1]) for x, result in evaluated if result is not None]
    roots = []
    for (x0, result0), (x1, result1) in zip(evaluated, evaluated[1:]):
        if result0 is None or result1 is None or result0[1] * result1[1] > 0:
            continue
        a, b, residual_a = x0, x1, result0[1]
        best = result0 if abs(result0[1]) <= abs(result1[1]) else result1
        best_x = x0 if best is result0 else x1
        for _ in range(iterations):
            middle = (a + b) / 2
            result = function(middle)
            if result is None:
                break
            best, best_x = result, middle
            if residual_a * result[1] <= 0:
                b = middle
            else:
                a, residual_a = middle, result[1]
        roots.append((best_x, best[0]))
    return roots, samples


def _solve_camera(targets: list[_Target], heading: float, roll: float, height_residual,
                  optics: _Optics) -> _Solution:
    """Camera rotation and location meeting three screen targets and a height rule.

    Heading and roll are fixed; the pitch is searched so that
    ``height_residual(rotation, location)`` is zero (it returns None where it does not
    apply). Among several solutions the camera furthest from the first target wins. When the
    height rule cannot be met, the closest valid attempt comes back marked inexact.
    """

    def attempt(pitch: float):
        rotation = camera_rotation(heading, pitch, roll)
        location = _position_meeting(targets, rotation, optics)
        if location is None:
            return None
        residual = height_residual(rotation, location)
        return None if residual is None else ((rotation, location), residual)

    limit = math.radians(88.0)
    roots, samples = _roots_by_scan(attempt, -limit, limit, steps=45)
    if roots:
        rotation, location = max((found for _pitch, found in roots),
                                 key=lambda found: np.linalg.norm(found[1] - targets[0].point))
        return _Solution(rotation, location)
    if not samples:
        raise ValueError("No camera position can frame this shot: the characters may overlap or stand too "
                         "close together. Move them apart or pick another size.")
    _pitch, (rotation, location), _residual = min(samples, key=lambda sample: abs(sample[2]))
    return _Solution(rotation, location, exact=False)


def _sightline_deg(eyes: np.ndarray, location: np.ndarray) -> float:
    """How far the camera at ``location`` looks up (positive) or down to see ``eyes``."""
    horizontal = math.hypot(eyes[0] - location[0], eyes[1] - location[1])
    return math.degrees(math.atan2(eyes[2] - location[2], horizontal))


def _sightline_residual(eyes: np.ndarray, sightline_deg: float):
    """Zero where the camera looks at ``eyes`` up (positive) or down at ``sightline_deg``."""
    slope = math.tan(math.radians(sightline_deg))

    def residual(_rotation: np.ndarray, location: np.ndarray) -> float:
        horizontal = math.hypot(eyes[0] - location[0], eyes[1] - location[1])
        return float(eyes[2] - location[2] - slope * horizontal)

    return residual


def _height_residual(height: float):
    """Zero where the camera stands at world height ``height``."""
    return lambda _rotation, location: float(location[2] - height)


def _screen_y_residual(point: np.ndarray, screen_y: float, optics: _Optics):
    """Zero where ``point`` shows at frame height ``screen_y``; None while it is behind the lens."""

    def residual(rotation: np.ndarray, location: np.ndarray) -> float | None:
        local = rotation.T @ (point - location)
        if -local[2] < MIN_DEPTH:
            return None
        return float(local[1] / -local[2] - optics.tangent(1, screen_y))

    return residual


def _solve_at_angle(targets: list[_Target], heading: float, angle: str, eyes: np.ndarray, floor_z: float,
                    optics: _Optics) -> tuple[_Solution, str]:
    """Solve the camera for ``angle`` (not overhead); returns the solution and any warning."""
    rule = ANGLE_RULES[angle]
    roll = math.radians(rule.roll_deg)
    solution = _solve_camera(targets, heading, roll, _sightline_residual(eyes, rule.sightline_deg), optics)
    warning = "" if solution.exact else (
        f"At {optics.lens_mm:g} mm the {_angle_label(angle).lower()} angle cannot be held at this size in this "
        "frame: the camera gets as close to it as it can. A longer lens keeps the angle.")
    lowest = floor_z + LOW_MIN_CAMERA_HEIGHT
    if rule.sightline_deg > 0 and solution.location[2] < lowest and eyes[2] > lowest:
        solution = _solve_camera(targets, heading, roll, _height_residual(lowest), optics)
        warning = (f"For this low angle at {optics.lens_mm:g} mm the camera would sink below the floor: it sits "
                   f"{LOW_MIN_CAMERA_HEIGHT:g} m above the floor and looks up less steeply. A wider lens gives "
                   "a stronger low angle.")
    return solution, warning


# --------------------------------------------------------------------------------------------
# Character landmarks
# --------------------------------------------------------------------------------------------


def _point(value) -> np.ndarray:
    return np.asarray(value, dtype=float)


def _horizontal_unit(vector, what: str) -> np.ndarray:
    flat = np.array((vector[0], vector[1], 0.0), dtype=float)
    length = np.linalg.norm(flat)
    if length < 1e-9:
        raise ValueError(f"{what} has no horizontal direction; turn or move the stand-in so it has one.")
    return flat / length


def _cut_point(subject: Subject, rule: SizeRule) -> np.ndarray:
    """The body point the frame's bottom edge cuts through, straight under the eyes."""
    return _point(subject.eyes) - rule.cut_below_eyes * subject.height * _UP


def _vertical_targets(subject: Subject, rule: SizeRule) -> list[_Target]:
    if rule.whole_figure:
        return [_Target(_point(subject.head_top), 1, rule.head_top_y),
                _Target(_point(subject.feet), 1, rule.feet_y)]
    return [_Target(_point(subject.eyes), 1, rule.eyes_y), _Target(_cut_point(subject, rule), 1, 0.0)]


def _anchor(subject: Subject, rule: SizeRule) -> np.ndarray:
    """The point placed horizontally: the eyes, or the figure's middle for whole-figure sizes."""
    if rule.whole_figure:
        return (_point(subject.head_top) + _point(subject.feet)) / 2
    return _point(subject.eyes)


def _rotate_z(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array((c * vector[0] - s * vector[1], s * vector[0] + c * vector[1], vector[2]))


def _heading_of(direction: np.ndarray) -> float:
    return math.atan2(direction[1], direction[0])


def _angle_label(angle: str) -> str:
    return next(label for key, label, _description in ANGLES if key == angle)


def _size_label(size: str) -> str:
    return SHOT_SIZE_BY_KEY[size].label.lower()


def lead_room_x(facing_on_screen: float, aspect: float) -> float:
    """Horizontal frame position of a character's eyes for its look direction.

    ``facing_on_screen`` is the sine of how far the character turns from the lens toward
    screen right (negative: screen left). Looking right it sits on the left third, looking
    left on the right third, looking nearly into the lens centred. Portrait frames use a
    smaller offset so faces stay in the narrow frame.
    """
    if abs(facing_on_screen) < math.sin(math.radians(NEARLY_INTO_LENS_DEG)):
        return 0.5
    offset = LEAD_ROOM * min(1.0, aspect)
    return 0.5 - offset if facing_on_screen > 0 else 0.5 + offset


def _heading_toward(look: np.ndarray, screen_x: float, optics: _Optics) -> float:
    """Camera heading that shows horizontal direction ``look`` at ``screen_x`` (approximately)."""
    return _heading_of(look) + math.atan(optics.tangent(0, screen_x))


# --------------------------------------------------------------------------------------------
# The variants
# --------------------------------------------------------------------------------------------


def _frame_single(subject: Subject, rule: SizeRule, optics: _Optics, angle: str,
                  azimuth_deg: float) -> CameraPlacement:
    """One character at ``azimuth_deg`` around it, on the third that leaves room for its look."""
    facing = _horizontal_unit(subject.facing, f"Character {subject.name!r}'s facing")
    toward_camera = _rotate_z(facing, math.radians(azimuth_deg))
    look = -toward_camera
    camera_right = np.cross(look, _UP)
    screen_x = lead_room_x(float(facing @ camera_right), optics.aspect)
    targets = _vertical_targets(subject, rule) + [_Target(_anchor(subject, rule), 0, screen_x)]
    heading = _heading_toward(look, screen_x, optics)
    solution, warning = _solve_at_angle(targets, heading, angle, _point(subject.eyes), subject.feet[2], optics)
    return optics.placement(solution.rotation, solution.location, warning)


def _taller(subjects: list[Subject]) -> Subject:
    return max(subjects, key=lambda subject: subject.head_top[2])


def _frame_two_shot(pair: list[Subject], rule: SizeRule, optics: _Optics, angle: str) -> CameraPlacement:
    """Both characters side by side, the camera square to the line between them on the side
    their mean facing points to. The taller one sets the size; the pair's eyes are centred,
    and when that leaves either outside ``TWO_SHOT_EDGE`` the camera pulls back until both
    eyes sit on the edges, the taller one's eyes (or head) kept at the size's height."""
    first, second = pair
    across = _horizontal_unit(_point(second.eyes) - _point(first.eyes),
                              f"The line from {first.name!r} to {second.name!r}")
    look = np.cross(_UP, across)  # looking this way shows ``first`` on screen left
    mean_facing = _point(first.facing) + _point(second.facing)
    if float(mean_facing @ look) > 0:  # they face away from this camera: stand on the other side
        look = -look
    lead = _taller(pair)
    anchors = [_point(subject.eyes) for subject in pair]
    floor_z = min(subject.feet[2] for subject in pair)
    heading = _heading_of(look)
    centred = _vertical_targets(lead, rule) + [_Target((anchors[0] + anchors[1]) / 2, 0, 0.5)]
    solution, warning = _solve_at_angle(centred, heading, angle, _point(lead.eyes), floor_z, optics)
    placement = optics.placement(solution.rotation, solution.location, warning)
    eyes_x = [project(subject.eyes, placement)[0] for subject in pair]
    if all(TWO_SHOT_EDGE <= x <= 1.0 - TWO_SHOT_EDGE for x in eyes_x):
        return placement
    left, right = (anchors[0], anchors[1]) if eyes_x[0] <= eyes_x[1] else (anchors[1], anchors[0])
    spread = _vertical_targets(lead, rule)[:1] + [_Target(left, 0, TWO_SHOT_EDGE),
                                                  _Target(right, 0, 1.0 - TWO_SHOT_EDGE)]
    solution, warning = _solve_at_angle(spread, heading, angle, _point(lead.eyes), floor_z, optics)
    return optics.placement(solution.rotation, solution.location, warning)


def _near_shoulder(fore: Subject, camera_side: np.ndarray) -> np.ndarray:
    """The foreground character's shoulder on the camera's side."""
    shoulders = (_point(fore.right_shoulder), _point(fore.left_shoulder))
    middle = (shoulders[0] + shoulders[1]) / 2
    return max(shoulders, key=lambda point: float((point - middle) @ camera_side))


def _over_shoulder_heading(target: Subject, rule: SizeRule, target_x: float, shoulder: np.ndarray,
                           shoulder_x: float, side: float, optics: _Optics) -> float:
    """A first guess at the over-the-shoulder camera heading, worked out in plan view.

    The camera stands at the size's distance from the framed eyes and sees the eyes and the
    shoulder ``alpha`` apart (their screen positions); the law of sines in the triangle
    eyes-shoulder-camera gives where around the eyes it stands. When no such triangle exists
    the camera takes the place that separates them most.
    """
    eyes = _point(target.eyes)
    distance = rule.frame_height_m(target.height) * optics.lens_mm / optics.sensor_height_mm
    alpha = abs(math.atan(optics.tangent(0, target_x)) - math.atan(optics.tangent(0, shoulder_x)))
    to_shoulder = shoulder - eyes
    to_shoulder[2] = 0.0
    gap = float(np.linalg.norm(to_shoulder))
    ratio = distance * math.sin(alpha) / gap
    angle_at_shoulder = math.pi / 2 if ratio >= 1.0 else math.pi - math.asin(ratio)
    angle_at_eyes = math.pi - alpha - angle_at_shoulder
    toward_camera = _rotate_z(to_shoulder / gap, side * angle_at_eyes)
    return _heading_toward(-toward_camera, target_x, optics)


def _over_shoulder_search(targets: list[_Target], height_residual, roll: float, shoulder: np.ndarray,
                          shoulder_x: float, target_eyes: np.ndarray, guess: float,
                          optics: _Optics) -> _Solution | None:
    """Search the camera heading near ``guess`` so ``shoulder`` lands at ``shoulder_x`` while
    ``targets`` and the height rule hold, the shoulder in frame, in front of the lens by at
    least ``OTS_MIN_SHOULDER_DEPTH`` and nearer than the framed character."""

    def attempt(heading: float):
        try:
            solution = _solve_camera(targets, heading, roll, height_residual, optics)
        except ValueError:
            return None
        if not solution.exact:
            return None
        placement = optics.placement(solution.rotation, solution.location)
        x, y, depth = project(shoulder, placement)
        target_depth = project(target_eyes, placement)[2]
        if not (OTS_MIN_SHOULDER_DEPTH <= depth <= target_depth - OTS_MIN_SEPARATION and 0.0 <= y <= 1.0):
            return None
        return solution, x - shoulder_x

    spread = math.radians(OTS_HEADING_SPREAD_DEG)
    roots, _samples = _roots_by_scan(attempt, guess - spread, guess + spread, steps=17, iterations=30)
    if not roots:
        return None
    return min(roots, key=lambda root: abs(root[0] - guess))[1]


def _frame_over_the_shoulder(pair: list[Subject], size: str, rule: SizeRule, optics: _Optics, angle: str,
                             azimuth_deg: float) -> CameraPlacement:
    """``pair[1]`` framed at ``rule`` with eyes on a third, over ``pair[0]``'s near shoulder.

    Positive (or zero) azimuth stands the camera on the framed character's left of the line
    between them: the framed character sits on the right third, the foreground shoulder
    ``OTS_SHOULDER_X`` in from the left edge (negative azimuth mirrors it). The camera
    heading is searched to place the shoulder; the camera height follows the angle, or, when
    the shoulder would then drop out of frame, sits where the shoulder shows at
    ``OTS_SHOULDER_Y``. When the lens is too wide for the shoulder to stay in front of the
    camera and in frame, the framing is loosened step by step and a warning says so.
    """
    fore, target = pair
    side = 1.0 if azimuth_deg >= 0 else -1.0
    toward_fore = _horizontal_unit(_point(fore.eyes) - _point(target.eyes),
                                   f"The line from {target.name!r} to {fore.name!r}")
    shoulder = _near_shoulder(fore, side * np.cross(_UP, toward_fore))
    target_eyes = _point(target.eyes)
    target_x = 0.5 + side * LEAD_ROOM * min(1.0, optics.aspect)
    shoulder_x = OTS_SHOULDER_X if side > 0 else 1.0 - OTS_SHOULDER_X
    angle_rule = ANGLE_RULES[angle]
    roll = math.radians(angle_rule.roll_deg)
    height_rules = (_sightline_residual(target_eyes, angle_rule.sightline_deg),
                    _screen_y_residual(shoulder, OTS_SHOULDER_Y, optics))

    for step in range(OTS_LOOSEN_STEPS):
        tried = rule.looser(OTS_LOOSEN_FACTOR**step)
        targets = _vertical_targets(target, tried) + [_Target(_anchor(target, tried), 0, target_x)]
        guess = _over_shoulder_heading(target, tried, target_x, shoulder, shoulder_x, side, optics)
        for height_rule in height_rules:
            solution = _over_shoulder_search(targets, height_rule, roll, shoulder, shoulder_x, target_eyes,
                                             guess, optics)
            if solution is None:
                continue
            warnings = []
            if step:
                warnings.append(f"At {optics.lens_mm:g} mm the camera would have to stand inside {fore.name} "
                                f"for an over-the-shoulder {_size_label(size)}: framed looser so the shoulder "
                                f"stays in the foreground. A longer lens keeps the {_size_label(size)}.")
            sightline = _sightline_deg(target_eyes, solution.location)
            if abs(sightline - angle_rule.sightline_deg) > OTS_ANGLE_TOLERANCE_DEG:
                warnings.append(f"To keep {fore.name}'s shoulder in frame the camera looks "
                                f"{'up' if sightline > 0 else 'down'} at {target.name} by "
                                f"{abs(sightline):.0f} degrees, not at the {_angle_label(angle).lower()} angle.")
            return optics.placement(solution.rotation, solution.location, " ".join(warnings))

    placement = _frame_single(target, rule, optics, angle, azimuth_deg)
    return replace(placement, warning=(f"{fore.name} stands too close to {target.name} for an over-the-shoulder "
                                       f"at {optics.lens_mm:g} mm: framed {target.name} alone. Move them apart or "
                                       "use a longer lens."))


def _frame_overhead(subjects: list[Subject], rule: SizeRule, optics: _Optics) -> CameraPlacement:
    """Straight down over the characters' middle, the first one's head toward the top of frame.

    The frame spans the size's height at the top of the highest head, widened to keep every
    character's eyes within the middle 80 % of the frame.
    """
    first = subjects[0]
    lengthwise = _point(first.head_top) - _point(first.feet)
    lengthwise[2] = 0.0
    lying = np.linalg.norm(lengthwise) > 0.3 * first.height
    screen_up = _horizontal_unit(lengthwise if lying else first.facing, f"Character {first.name!r}'s facing")
    screen_right = np.cross(screen_up, _UP)
    rotation = np.column_stack((screen_right, screen_up, _UP))
    middles = [(_point(s.head_top) + _point(s.feet)) / 2 for s in subjects]
    centre = np.mean(middles, axis=0)
    frame_height = max(rule.frame_height_m(s.height) for s in subjects)
    for eyes in (_point(s.eyes) for s in subjects):
        offset = eyes - centre
        frame_height = max(frame_height, abs(offset @ screen_up) / 0.4,
                           abs(offset @ screen_right) / (0.4 * optics.aspect))
    top = max(s.head_top[2] for s in subjects)
    distance = max(frame_height * optics.lens_mm / (optics.sensor_width_mm / optics.aspect), OVERHEAD_CLEARANCE)
    location = np.array((centre[0], centre[1], top + distance))
    return optics.placement(rotation, location)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _check_request(subjects: list[Subject], size: str, lens_mm: float, sensor_width_mm: float, aspect: float,
                   angle: str, variant: str) -> None:
    """Raise ValueError, in a filmmaker's words, for a request that cannot be framed."""
    if size not in _SIZE_KEYS:
        raise ValueError(f"Unknown shot size {size!r}: pick one of {', '.join(_SIZE_KEYS)}.")
    if angle not in _ANGLE_KEYS:
        raise ValueError(f"Unknown camera angle {angle!r}: pick one of {', '.join(_ANGLE_KEYS)}.")
    if variant not in _VARIANT_KEYS:
        raise ValueError(f"Unknown framing {variant!r}: pick one of {', '.join(_VARIANT_KEYS)}.")
    if not lens_mm > 0:
        raise ValueError(f"The lens must be longer than 0 mm (got {lens_mm:g} mm).")
    if not sensor_width_mm > 0:
        raise ValueError(f"The sensor must be wider than 0 mm (got {sensor_width_mm:g} mm).")
    if not aspect > 0:
        raise ValueError(f"The frame's aspect ratio must be above 0 (got {aspect:g}).")
    needed = 1 if variant == "SINGLE" else 2
    if len(subjects) < needed:
        shot = {"SINGLE": "A shot", "TWO_SHOT": "A two-shot", "OTS": "An over-the-shoulder shot"}[variant]
        raise ValueError(f"{shot} needs {needed} character{'s' if needed > 1 else ''} to frame; "
                         f"{len(subjects)} {'is' if len(subjects) == 1 else 'are'} picked.")
    for subject in subjects[:needed]:
        if not subject.height > 0:
            raise ValueError(f"Character {subject.name!r} has no height, so no shot size can be measured on it; "
                             "check its stand-in.")


def frame_subjects(subjects: list[Subject], size: str, lens_mm: float = 35.0, sensor_width_mm: float = 24.89,
                   aspect: float = 16 / 9, angle: str = "EYE", variant: str = "SINGLE",
                   azimuth_deg: float = 25.0) -> CameraPlacement:
    """Place a camera that frames ``subjects`` at shot ``size`` through the given lens.

    ``azimuth_deg`` is where the camera stands around the first character, measured from the
    way it faces: 0 straight in front, positive counter-clockwise seen from above, which is
    toward the character's left (90 = at its left side). Two-shots stand square to the line
    between the two characters and ignore it; over-the-shoulder shots use only its sign (see
    ``_frame_over_the_shoulder``). SINGLE frames ``subjects[0]``, TWO_SHOT the first two,
    OTS looks over ``subjects[0]``'s shoulder at ``subjects[1]``.

    Raises ValueError, with a sentence for the user, for a request that cannot be framed.
    """
    _check_request(subjects, size, lens_mm, sensor_width_mm, aspect, angle, variant)
    rule = SIZE_RULES[size]
    if angle == OVERHEAD:
        chosen = subjects[:1] if variant == "SINGLE" else subjects[:2]
        placement = _frame_overhead(chosen, rule, _Optics(float(lens_mm), float(sensor_width_mm), float(aspect)))
        if variant == "OTS":
            placement = replace(placement, warning="An over-the-shoulder shot cannot look straight down: "
                                                   "framed both characters from above instead.")
        return placement
    lead = _taller(subjects[:2]) if variant == "TWO_SHOT" else subjects[1] if variant == "OTS" else subjects[0]
    optics = _optics_for(rule, lead, lens_mm, sensor_width_mm, aspect)
    if variant == "TWO_SHOT":
        placement = _frame_two_shot(list(subjects[:2]), rule, optics, angle)
    elif variant == "OTS":
        placement = _frame_over_the_shoulder(list(subjects[:2]), size, rule, optics, angle, azimuth_deg)
    else:
        placement = _frame_single(subjects[0], rule, optics, angle, azimuth_deg)
    return _warn_if_too_close(placement, lead, size)


def _warn_if_too_close(placement: CameraPlacement, subject: Subject, size: str) -> CameraPlacement:
    """Add a warning when the lens ends up nearer the eyes than ``CLOSE_FOCUS_M``."""
    distance = float(np.linalg.norm(np.array(placement.location) - _point(subject.eyes)))
    if distance >= CLOSE_FOCUS_M:
        return placement
    note = (f"At {placement.lens_mm:g} mm the lens stands {distance * 100:.0f} cm from {subject.name}'s eyes for "
            f"this {_size_label(size)}: closer than most lenses focus, and the face distorts. A longer lens "
            "gives the same size from further back.")
    return replace(placement, warning=" ".join(part for part in (placement.warning, note) if part))
