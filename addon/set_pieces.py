# SPDX-License-Identifier: GPL-3.0-or-later
"""Set pieces a filmmaker blocks a scene with, as plain meshes in real-world metres. Pure Python.

Conventions: Z up, metres. A piece's origin is the centre of its footprint on the floor, so its
bottom is at z=0, and its front faces -Y (a chair's back, a bed's headboard and a car's boot are
toward +Y). Every mesh is made of closed shells with outward normals (faces wind
counter-clockwise seen from outside), built from a few primitives: boxes (straight or tapered),
surfaces of revolution (cylinder, cone, low-poly ellipsoid) and a seeded irregular rock.

``PIECES`` is the catalogue; ``build_piece(kind, **params)`` builds one. Parameters that are
lengths are in metres and must be positive. A wall is built as boxes around its door and window
openings, so an opening is really empty (a camera or a ray sees through it).
"""

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType

Vec3 = tuple[float, float, float]
Face = tuple[int, ...]

#: Two lengths closer than this (metres) are the same; wall slivers thinner than it are left out.
TOLERANCE = 1e-6


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Opening:
    """A hole right through a wall, in the wall's own coordinates.

    ``offset`` is where the opening's centre is along the wall, measured from the wall's middle
    (negative toward the left end seen from the front, -X); ``sill`` is the height of its bottom
    edge above the floor (0 for a door).
    """

    kind: str
    offset: float
    width: float
    height: float
    sill: float = 0.0

    @property
    def x_min(self) -> float:
        return self.offset - self.width / 2

    @property
    def x_max(self) -> float:
        return self.offset + self.width / 2

    @property
    def z_min(self) -> float:
        return self.sill

    @property
    def z_max(self) -> float:
        return self.sill + self.height

    def overlaps(self, other: "Opening") -> bool:
        """True when the two openings share some area (openings that only touch do not)."""
        return (
            self.x_min < other.x_max - TOLERANCE
            and other.x_min < self.x_max - TOLERANCE
            and self.z_min < other.z_max - TOLERANCE
            and other.z_min < self.z_max - TOLERANCE
        )

    def numbers(self) -> tuple[float, ...]:
        """The opening as a wall takes it: (offset, width, height), plus sill for a window."""
        return tuple(getattr(self, name) for name in OPENING_FIELDS[self.kind])

    def describe(self) -> str:
        """'the door at -1 m (0.9 m wide)': how messages name an opening."""
        return f"the {self.kind} at {self.offset:g} m ({self.width:g} m wide)"


@dataclass
class PieceMesh:
    """A built piece: its mesh, its size and what a stand-in can do with it.

    ``dimensions`` is the size of its bounding box (x, y, z) in metres; ``seat_height`` is how
    high above the origin a character sits on it (None for anything that is not a seat);
    ``openings`` are the holes a wall was built around.
    """

    verts: list[Vec3]
    faces: list[Face]
    dimensions: Vec3
    seat_height: float | None = None
    openings: list[Opening] = field(default_factory=list)


# --------------------------------------------------------------------------- primitives


@dataclass
class Shell:
    """One closed surface: vertices and faces indexing them."""

    verts: list[Vec3]
    faces: list[Face]


Rect = tuple[float, float, float, float]  # x_min, x_max, y_min, y_max


def tapered_box(bottom: Rect, top: Rect, z_min: float, z_max: float) -> Shell:
    """A six-sided block whose bottom and top are axis-aligned rectangles (a car's cabin)."""
    (bx0, bx1, by0, by1), (tx0, tx1, ty0, ty1) = bottom, top
    verts = [
        (bx0, by0, z_min), (bx1, by0, z_min), (bx1, by1, z_min), (bx0, by1, z_min),
        (tx0, ty0, z_max), (tx1, ty0, z_max), (tx1, ty1, z_max), (tx0, ty1, z_max),
    ]  # fmt: skip
    faces = [
        (0, 3, 2, 1),  # bottom
        (4, 5, 6, 7),  # top
        (0, 1, 5, 4),  # front (-Y)
        (1, 2, 6, 5),  # right (+X)
        (2, 3, 7, 6),  # back (+Y)
        (3, 0, 4, 7),  # left (-X)
    ]
    return Shell(verts, faces)


def box(low: Vec3, high: Vec3) -> Shell:
    """An axis-aligned box between two opposite corners."""
    rect = (low[0], high[0], low[1], high[1])
    return tapered_box(rect, rect, low[2], high[2])


def centred_box(width: float, depth: float, z_min: float, z_max: float, x: float = 0.0, y: float = 0.0) -> Shell:
    """A box of the given footprint centred on (x, y), from z_min to z_max."""
    return box((x - width / 2, y - depth / 2, z_min), (x + width / 2, y + depth / 2, z_max))


#: For each axis a surface of revolution can run along, the piece axis that its own x, y and z
#: (z being the axis of revolution) go to. Cyclic permutations only: they are rotations, so the
#: faces keep their winding and outward normals stay outward.
_AXIS_ORDER = {"z": (0, 1, 2), "x": (1, 2, 0), "y": (2, 0, 1)}


def lathe(
    profile: Sequence[tuple[float, float]],
    base: Vec3,
    radii: tuple[float, float],
    segments: int,
    axis: str = "z",
) -> Shell:
    """A surface of revolution around ``axis`` through ``base``.

    ``profile`` lists (radius, distance along the axis) from one end to the other, radius as a
    fraction of ``radii`` (the radius across the two other axes, which makes ellipses). An end
    with radius 0 closes in a point, any other end in a flat cap; inner points need a radius.
    A vertex sits at every quarter turn when ``segments`` is a multiple of 4, so the shape's
    bounding box is exactly its radii.
    """
    inner = profile[1:-1]
    two_points_only = len(profile) == 2 and profile[0][0] == profile[1][0] == 0
    if len(profile) < 2 or two_points_only or any(r <= 0 for r, _ in inner):
        raise ValueError(f"A lathe profile needs two or more points and a radius at every inner point: {profile}.")
    local: list[Vec3] = []
    rings: list[list[int]] = []
    for radius, along in profile:
        start = len(local)
        if radius == 0:
            local.append((0.0, 0.0, along))
        else:
            for step in range(segments):
                angle = 2 * math.pi * step / segments
                local.append((radius * radii[0] * math.cos(angle), radius * radii[1] * math.sin(angle), along))
        rings.append(list(range(start, len(local))))
    faces: list[Face] = []
    for lower, upper in pairwise(rings):
        for i in range(segments):
            j = (i + 1) % segments
            if len(lower) == 1:
                faces.append((lower[0], upper[j], upper[i]))
            elif len(upper) == 1:
                faces.append((lower[i], lower[j], upper[0]))
            else:
                faces.append((lower[i], lower[j], upper[j], upper[i]))
    if len(rings[0]) > 1:
        faces.append(tuple(reversed(rings[0])))
    if len(rings[-1]) > 1:
        faces.append(tuple(rings[-1]))
    order = _AXIS_ORDER[axis]
    verts = []
    for point in local:
        placed = [0.0, 0.0, 0.0]
        for local_axis, world_axis in enumerate(order):
            placed[world_axis] = point[local_axis]
        verts.append((base[0] + placed[0], base[1] + placed[1], base[2] + placed[2]))
    return Shell(verts, faces)


def cylinder(base: Vec3, radii: tuple[float, float], length: float, segments: int = 16, axis: str = "z") -> Shell:
    """A capped cylinder (elliptic if the radii differ) from ``base`` along ``axis``."""
    return lathe([(1.0, 0.0), (1.0, length)], base, radii, segments, axis)


def cone(base: Vec3, radii: tuple[float, float], height: float, segments: int = 16) -> Shell:
    """A cone standing on a flat base centred on ``base``, its tip ``height`` above."""
    return lathe([(1.0, 0.0), (0.0, height)], base, radii, segments)


def ellipsoid(base: Vec3, radii: tuple[float, float], height: float, segments: int = 12, rings: int = 6) -> Shell:
    """A low-poly ellipsoid resting on ``base`` (its bottom point), ``height`` tall.

    ``rings`` is even, so there is a ring at the equator and the width is exactly ``2 * radii``.
    """
    latitudes = [-math.pi / 2 + math.pi * k / rings for k in range(rings + 1)]
    profile = [(math.cos(lat), height / 2 * (1 + math.sin(lat))) for lat in latitudes]
    profile[0] = (0.0, 0.0)
    profile[-1] = (0.0, height)
    return lathe(profile, base, radii, segments)


#: A boulder's silhouette, as fractions of its size: flat bottom, rounded top.
_ROCK_PROFILE = ((0.8, 0.0), (1.0, 0.25), (0.85, 0.55), (0.5, 0.85), (0.0, 1.0))


def rock(width: float, depth: float, height: float, seed: int, segments: int = 7) -> Shell:
    """A seeded irregular boulder filling exactly width x depth x height, its flat base on z=0.

    A lathe of ``_ROCK_PROFILE`` whose vertices are pushed in by random amounts, then stretched
    back onto the requested size; the same seed always gives the same rock.
    """
    shape = lathe(_ROCK_PROFILE, (0.0, 0.0, 0.0), (1.0, 1.0), segments)
    chance = random.Random(seed)
    jittered = []
    for x, y, z in shape.verts:
        inward = chance.uniform(0.7, 1.0)
        lift = chance.uniform(-0.07, 0.07) if 0.0 < z < 1.0 else 0.0
        jittered.append((x * inward, y * inward, z + lift))
    return fit_into(Shell(jittered, shape.faces), width, depth, height)


def fit_into(shell: Shell, width: float, depth: float, height: float) -> Shell:
    """Stretch a shell so its bounding box is width x depth x height, centred, bottom on z=0."""
    low, high = bounds(shell.verts)
    scale = (width / (high[0] - low[0]), depth / (high[1] - low[1]), height / (high[2] - low[2]))
    offset = (-(low[0] + high[0]) / 2, -(low[1] + high[1]) / 2, -low[2])
    verts = [tuple((point[a] + offset[a]) * scale[a] for a in range(3)) for point in shell.verts]
    return Shell(verts, shell.faces)


def bounds(verts: Iterable[Vec3]) -> tuple[Vec3, Vec3]:
    """The (low, high) corners of the points' bounding box."""
    xs, ys, zs = zip(*verts)
    return (min(xs), min(ys), min(zs)), (max(xs), max(ys), max(zs))


def assemble(shells: Iterable[Shell], seat_height: float | None = None, openings: Sequence[Opening] = ()) -> PieceMesh:
    """Join shells into one piece mesh (each stays its own closed surface) and measure it."""
    verts: list[Vec3] = []
    faces: list[Face] = []
    for shell in shells:
        start = len(verts)
        verts.extend(tuple(float(c) for c in v) for v in shell.verts)
        faces.extend(tuple(start + i for i in face) for face in shell.faces)
    low, high = bounds(verts)
    dimensions = (high[0] - low[0], high[1] - low[1], high[2] - low[2])
    return PieceMesh(verts, faces, dimensions, seat_height, list(openings))


# --------------------------------------------------------------------------- checks


def _length(value) -> str:
    return f"{value:g} m"


def _possessive(noun: str) -> str:
    """The noun's possessive with its article: the chair's, the stairs'."""
    return f"the {noun}'" if noun.endswith("s") else f"the {noun}'s"


def _require_below(piece: str, lower_name: str, lower: float, upper_name: str, upper: float) -> None:
    if lower >= upper:
        raise ValueError(
            f"{_possessive(piece).capitalize()} {lower_name} ({_length(lower)}) must be below its "
            f"{upper_name} ({_length(upper)}): lower the {lower_name} or raise the {upper_name}."
        )


# --------------------------------------------------------------------------- builders


def _build_box(width: float, depth: float, height: float) -> PieceMesh:
    return assemble([centred_box(width, depth, 0.0, height)])


def _build_floor(width: float, depth: float, thickness: float) -> PieceMesh:
    return assemble([centred_box(width, depth, 0.0, thickness)])


def _legs(width: float, depth: float, leg: float, length: float) -> list[Shell]:
    """Four square legs of side ``leg`` standing in the corners of a width x depth footprint."""
    xs = (-width / 2 + leg / 2, width / 2 - leg / 2)
    ys = (-depth / 2 + leg / 2, depth / 2 - leg / 2)
    return [centred_box(leg, leg, 0.0, length, x, y) for x in xs for y in ys]


def _legged_top(width: float, depth: float, top_height: float, thickness: float, leg: float) -> list[Shell]:
    """A slab whose top is at ``top_height`` on four corner legs: a table top, a chair seat."""
    slab_thickness = min(thickness, top_height / 2)
    leg_side = min(leg, width / 4, depth / 4)
    slab_bottom = top_height - slab_thickness
    return [centred_box(width, depth, slab_bottom, top_height), *_legs(width, depth, leg_side, slab_bottom)]


def _build_table(width: float, depth: float, height: float) -> PieceMesh:
    return assemble(_legged_top(width, depth, height, thickness=0.04, leg=0.06))


def _build_chair(width: float, depth: float, seat_height: float, height: float) -> PieceMesh:
    _require_below("chair", "seat_height", seat_height, "height", height)
    back_thickness = min(0.04, depth / 4)
    back = centred_box(width, back_thickness, seat_height, height, y=depth / 2 - back_thickness / 2)
    return assemble([*_legged_top(width, depth, seat_height, thickness=0.04, leg=0.035), back], seat_height)


def _build_sofa(width: float, depth: float, seat_height: float, arm_height: float, height: float) -> PieceMesh:
    _require_below("sofa", "seat_height", seat_height, "arm_height", arm_height)
    if arm_height > height + TOLERANCE:
        raise ValueError(
            f"The sofa's arm_height ({_length(arm_height)}) must not be above its height ({_length(height)}), "
            "the top of the back: lower the arms or raise the back."
        )
    arm = min(0.2, width / 5)
    back = min(0.2, depth / 3)
    inner_width = width - 2 * arm
    arms = [centred_box(arm, depth, 0.0, arm_height, x=side * (width - arm) / 2) for side in (-1, 1)]
    backrest = centred_box(inner_width, back, 0.0, height, y=(depth - back) / 2)
    seat = centred_box(inner_width, depth - back, 0.0, seat_height, y=-back / 2)
    return assemble([seat, backrest, *arms], seat_height)


def _build_bed(width: float, depth: float, mattress_height: float, headboard_height: float) -> PieceMesh:
    _require_below("bed", "mattress_height", mattress_height, "headboard_height", headboard_height)
    headboard = min(0.06, depth / 10)
    mattress = min(0.25, mattress_height / 2)
    frame_top = mattress_height - mattress
    inset = min(0.02, width / 20)
    bed_depth = depth - headboard
    y = -headboard / 2
    return assemble(
        [
            centred_box(width, bed_depth, 0.0, frame_top, y=y),
            centred_box(width - 2 * inset, bed_depth - 2 * inset, frame_top, mattress_height, y=y),
            centred_box(width, headboard, 0.0, headboard_height, y=(depth - headboard) / 2),
        ],
        seat_height=mattress_height,
    )


def _build_door(width: float, height: float, thickness: float) -> PieceMesh:
    """A door leaf with a lever handle on each face, near its right edge at about 1 m."""
    handle_length = min(0.12, width / 4)
    handle_depth = min(0.05, thickness * 2)
    handle_thickness = min(0.02, height / 20)
    handle_z = min(1.0, height / 2)
    handle_x = width / 2 - min(0.06, width / 10) - handle_length / 2
    handle_y = (thickness + handle_depth) / 2
    handles = [
        centred_box(handle_length, handle_depth, handle_z, handle_z + handle_thickness, handle_x, side * handle_y)
        for side in (-1, 1)
    ]
    return assemble([centred_box(width, thickness, 0.0, height), *handles])


def _build_pillar(width: float, depth: float, height: float, round: bool) -> PieceMesh:  # noqa: A002
    if round:
        return assemble([cylinder((0.0, 0.0, 0.0), (width / 2, depth / 2), height, segments=16)])
    return assemble([centred_box(width, depth, 0.0, height)])


def _build_stairs(width: float, rise: float, tread: float, steps: int) -> PieceMesh:
    """A straight flight climbing away from the viewer (+Y); step n is a block n rises tall."""
    run = steps * tread
    return assemble(
        centred_box(width, tread, 0.0, (n + 1) * rise, y=-run / 2 + (n + 0.5) * tread) for n in range(steps)
    )


def _build_car(width: float, length: float, height: float) -> PieceMesh:
    """A saloon pointing -Y: body, a cabin tapering to the roof (nearer the back) and four wheels."""
    wheel_radius = min(0.23 * height, 0.12 * length)
    wheel_width = 0.12 * width
    body = centred_box(width, length, 0.18 * height, 0.65 * height)
    cabin = tapered_box(
        (-0.47 * width, 0.47 * width, -0.22 * length, 0.30 * length),
        (-0.40 * width, 0.40 * width, -0.06 * length, 0.24 * length),
        0.65 * height,
        height,
    )
    wheels = [
        cylinder((side * width / 2 - (side + 1) * wheel_width / 2, end * 0.32 * length, wheel_radius),
                 (wheel_radius, wheel_radius), wheel_width, segments=16, axis="x")
        for side in (-1, 1)
        for end in (-1, 1)
    ]  # fmt: skip
    return assemble([body, cabin, *wheels])


def _build_tree(
    height: float, canopy_diameter: float, trunk_height: float, trunk_diameter: float, conifer: bool
) -> PieceMesh:
    """A trunk under a canopy: a low-poly ellipsoid, or a cone for a conifer."""
    _require_below("tree", "trunk_height", trunk_height, "height", height)
    _require_below("tree", "trunk_diameter", trunk_diameter, "canopy_diameter", canopy_diameter)
    canopy_height = height - trunk_height
    canopy_radii = (canopy_diameter / 2, canopy_diameter / 2)
    canopy_base = (0.0, 0.0, trunk_height)
    if conifer:
        canopy = cone(canopy_base, canopy_radii, canopy_height, segments=12)
        trunk_top = trunk_height + canopy_height / 4
    else:
        canopy = ellipsoid(canopy_base, canopy_radii, canopy_height, segments=12, rings=6)
        trunk_top = trunk_height + canopy_height / 2
    trunk = cylinder((0.0, 0.0, 0.0), (trunk_diameter / 2, trunk_diameter / 2), trunk_top, segments=8)
    return assemble([trunk, canopy])


def _build_rock(width: float, depth: float, height: float, seed: int) -> PieceMesh:
    return assemble([rock(width, depth, height, seed)])


# --------------------------------------------------------------------------- walls


#: The numbers that describe each kind of opening, in order.
OPENING_FIELDS = {"door": ("offset", "width", "height"), "window": ("offset", "width", "height", "sill")}


def _parse_opening(kind: str, entry) -> Opening:
    names = OPENING_FIELDS[kind]
    numbers = tuple(entry) if isinstance(entry, Sequence) and not isinstance(entry, str) else ()
    if len(numbers) != len(names) or not all(_is_number(n) for n in numbers):
        raise ValueError(f"Each {kind} is ({', '.join(names)}) in metres; got {entry!r}.")
    opening = Opening(kind, *map(float, numbers))
    for name in ("width", "height"):
        size = getattr(opening, name)
        if size <= 0:
            raise ValueError(f"The {kind} at {opening.offset:g} m needs a positive {name}; got {size:g}.")
    if opening.sill < 0:
        raise ValueError(f"The window at {opening.offset:g} m has its sill below the floor; give a sill of 0 or more.")
    return opening


def parse_openings(doors: Sequence, windows: Sequence) -> list[Opening]:
    """Openings from ``doors`` = [(offset, width, height)] and ``windows`` = [(offset, width, height, sill)].

    ``offset`` is the opening's centre along the wall from the wall's middle (+X to the right
    seen from the front), ``sill`` the height of a window's bottom edge; all in metres.
    """
    return [_parse_opening("door", entry) for entry in doors] + [
        _parse_opening("window", entry) for entry in windows
    ]


def check_openings(openings: Sequence[Opening], length: float, height: float) -> None:
    """Raise ValueError when an opening leaves the wall or two openings overlap."""
    for opening in openings:
        if opening.x_min < -length / 2 - TOLERANCE:
            raise ValueError(
                f"{opening.describe().capitalize()} runs past the wall's left end at {-length / 2:g} m; "
                "move it right or make it narrower."
            )
        if opening.x_max > length / 2 + TOLERANCE:
            raise ValueError(
                f"{opening.describe().capitalize()} runs past the wall's right end at {length / 2:g} m; "
                "move it left or make it narrower."
            )
        if opening.z_max > height + TOLERANCE:
            raise ValueError(
                f"{opening.describe().capitalize()} reaches {opening.z_max:g} m, above the wall's "
                f"{height:g} m top; make it lower or the wall taller."
            )
    for index, first in enumerate(openings):
        for second in openings[index + 1 :]:
            if first.overlaps(second):
                raise ValueError(
                    f"{first.describe().capitalize()} and {second.describe()} overlap; "
                    "move one of them or make it smaller."
                )


def wall_blocks(length: float, height: float, openings: Sequence[Opening]) -> list[tuple[float, float, float, float]]:
    """The solid parts of a wall face as (x_min, x_max, z_min, z_max) rectangles.

    The wall is cut into vertical strips at every opening's sides; in each strip the solid runs
    are what the openings crossing that strip leave between floor and top.
    """
    edges = sorted({-length / 2, length / 2, *(o.x_min for o in openings), *(o.x_max for o in openings)})
    edges = [x for x in edges if -length / 2 <= x <= length / 2]
    blocks = []
    for x_min, x_max in pairwise(edges):
        if x_max - x_min <= TOLERANCE:
            continue
        middle = (x_min + x_max) / 2
        holes = sorted((o for o in openings if o.x_min < middle < o.x_max), key=lambda o: o.z_min)
        floor = 0.0
        for hole in holes:
            if hole.z_min - floor > TOLERANCE:
                blocks.append((x_min, x_max, floor, hole.z_min))
            floor = max(floor, hole.z_max)
        if height - floor > TOLERANCE:
            blocks.append((x_min, x_max, floor, height))
    return blocks


def _build_wall(length: float, height: float, thickness: float, doors: Sequence, windows: Sequence) -> PieceMesh:
    """A straight wall along X, its faces toward -Y and +Y, with door and window openings."""
    openings = parse_openings(doors, windows)
    check_openings(openings, length, height)
    shells = [
        box((x_min, -thickness / 2, z_min), (x_max, thickness / 2, z_max))
        for x_min, x_max, z_min, z_max in wall_blocks(length, height, openings)
    ]
    if not shells:
        raise ValueError("The openings leave nothing of the wall; make them smaller or the wall bigger.")
    return assemble(shells, openings=openings)


#: A standard interior door opening (width, height) and window (width, height, sill), metres.
STANDARD_DOOR = (0.9, 2.1)
STANDARD_WINDOW = (1.2, 1.2, 0.9)
#: Least wall kept beside and above a standard opening.
_MIN_SOLID = 0.1


def wall_params(length: float, height: float, with_door: bool = False, with_window: bool = False) -> dict:
    """Wall parameters with a standard door and/or window, spaced evenly along the wall.

    The door comes first (toward -X), then the window; ValueError says how long or high the
    wall must be when they do not fit with 10 cm of wall around them.
    """
    wanted = [("door", *STANDARD_DOOR, 0.0)] if with_door else []
    wanted += [("window", *STANDARD_WINDOW)] if with_window else []
    widths = sum(width for _kind, width, _height, _sill in wanted)
    least_length = widths + _MIN_SOLID * (len(wanted) + 1)
    least_height = max((sill + tall for _kind, _width, tall, sill in wanted), default=0.0) + _MIN_SOLID
    if wanted and length < least_length - TOLERANCE:
        raise ValueError(
            f"A {_length(length)} wall is too short for its openings; make it {_length(least_length)} or longer."
        )
    if wanted and height < least_height - TOLERANCE:
        raise ValueError(
            f"A {_length(height)} wall is too low for its openings; make it {_length(least_height)} or higher."
        )
    gap = (length - widths) / (len(wanted) + 1)
    params = {"length": length, "height": height, "doors": [], "windows": []}
    left = -length / 2
    for kind, width, tall, sill in wanted:
        opening = Opening(kind, left + gap + width / 2, width, tall, sill)
        params[f"{kind}s"].append(opening.numbers())
        left = opening.x_max
    return params


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class PieceSpec:
    """A catalogue entry: what the piece is called, what it is for and its default parameters.

    A float default is a length in metres (must be positive), a bool is an on/off choice, an int
    a count (``steps``, at least 1) or a random seed (``seed``, 0 or more), and a tuple a list
    of openings.
    """

    key: str
    label: str
    description: str
    defaults: Mapping[str, object]
    build: Callable[..., PieceMesh] = field(repr=False, compare=False)


def _spec(key: str, label: str, description: str, build: Callable[..., PieceMesh], **defaults) -> PieceSpec:
    return PieceSpec(key, label, description, MappingProxyType(defaults), build)


PIECES: Mapping[str, PieceSpec] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            _spec("box", "Box", "A plain block for anything the catalogue lacks",
                  _build_box, width=1.0, depth=1.0, height=1.0),
            _spec("floor", "Floor", "A thin floor slab to stand the set on",
                  _build_floor, width=10.0, depth=10.0, thickness=0.02),
            _spec("wall", "Wall", "A straight wall along X, with door and window openings",
                  _build_wall, length=4.0, height=2.7, thickness=0.15, doors=(), windows=()),
            _spec("table", "Table", "A four-legged dining table for six",
                  _build_table, width=1.6, depth=0.9, height=0.75),
            _spec("chair", "Chair", "A dining chair, seat 45 cm high, back behind (+Y)",
                  _build_chair, width=0.45, depth=0.5, seat_height=0.45, height=0.9),
            _spec("sofa", "Sofa", "A three-seat sofa with arms, back behind (+Y)",
                  _build_sofa, width=2.0, depth=0.9, seat_height=0.42, arm_height=0.62, height=0.85),
            _spec("bed", "Bed", "A double bed, headboard behind (+Y)",
                  _build_bed, width=1.6, depth=2.0, mattress_height=0.55, headboard_height=1.0),
            _spec("door", "Door", "A door leaf with handles, to stand in a wall's door opening",
                  _build_door, width=0.9, height=2.1, thickness=0.04),
            _spec("pillar", "Pillar", "A square (or round) column, floor to ceiling",
                  _build_pillar, width=0.4, depth=0.4, height=3.0, round=False),
            _spec("stairs", "Stairs", "A straight flight of stairs climbing away from the front (+Y)",
                  _build_stairs, width=1.0, rise=0.18, tread=0.28, steps=15),
            _spec("car", "Car", "A saloon car pointing toward the front (-Y)",
                  _build_car, width=1.8, length=4.5, height=1.45),
            _spec("tree", "Tree", "A tree with a rounded (or conifer) canopy",
                  _build_tree, height=6.0, canopy_diameter=3.5, trunk_height=2.0, trunk_diameter=0.3, conifer=False),
            _spec("rock", "Rock", "An irregular boulder; change the seed for another shape",
                  _build_rock, width=1.0, depth=0.9, height=0.7, seed=1),
        )
    }
)  # fmt: skip

#: (key, label, description) of every piece, for an EnumProperty.
PIECE_ITEMS = tuple((spec.key, spec.label, spec.description) for spec in PIECES.values())

#: Smallest value of each whole-number parameter.
_MINIMUM_COUNT = {"steps": 1, "seed": 0}
#: The kind of opening each list-of-openings parameter holds.
_OPENING_KIND_BY_PARAM = {"doors": "door", "windows": "window"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked(spec: PieceSpec, name: str, value):
    """``value`` as the type the parameter's default has, or ValueError saying what to give."""
    default = spec.defaults[name]
    piece = f"{_possessive(spec.label.lower()).capitalize()} {name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{piece} is on or off: give True or False, not {value!r}.")
        return value
    if isinstance(default, int):
        minimum = _MINIMUM_COUNT[name]
        if not (isinstance(value, int) and not isinstance(value, bool)) or value < minimum:
            raise ValueError(f"{piece} must be a whole number of at least {minimum}; got {value!r}.")
        return value
    if isinstance(default, float):
        if not _is_number(value) or value <= 0:
            raise ValueError(f"{piece} must be a positive length in metres; got {value!r}.")
        return float(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{piece} must be a list of openings; got {value!r}.")
    kind = _OPENING_KIND_BY_PARAM[name]
    return tuple(_parse_opening(kind, entry).numbers() for entry in value)


def piece_spec(kind: str) -> PieceSpec:
    """The catalogue entry for ``kind``, or ValueError listing the kinds there are."""
    try:
        return PIECES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"There is no set piece called {kind!r}; choose one of {', '.join(PIECES)}.") from None


def resolve_params(kind: str, **params) -> dict:
    """The piece's defaults overridden by ``params``, each checked; ValueError says what to fix."""
    spec = piece_spec(kind)
    unknown = [name for name in params if name not in spec.defaults]
    if unknown:
        raise ValueError(
            f"The {spec.label.lower()} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(spec.defaults)}."
        )
    return {name: _checked(spec, name, params.get(name, default)) for name, default in spec.defaults.items()}


def build_piece(kind: str, **params) -> PieceMesh:
    """Build a catalogue piece: origin at its footprint centre on the floor, front toward -Y.

    Raises ValueError with a sentence naming what to fix for an unknown kind, an unknown
    parameter, a size that is not positive or parts that do not fit together.
    """
    return piece_spec(kind).build(**resolve_params(kind, **params))
