# SPDX-License-Identifier: GPL-3.0-or-later
"""Set piece geometry: real-world sizes, seats, wall openings, and meshes that are sound solids."""

import math

import numpy as np
import pytest

import mesh_topology
from standin.addon import set_pieces
from standin.addon.set_pieces import PIECES, build_piece

#: Bounding box (x, y, z) in metres each piece has with its default parameters.
EXPECTED_DIMENSIONS = {
    "box": (1.0, 1.0, 1.0),
    "floor": (10.0, 10.0, 0.02),
    "wall": (4.0, 0.15, 2.7),
    "table": (1.6, 0.9, 0.75),
    "chair": (0.45, 0.5, 0.9),
    "sofa": (2.0, 0.9, 0.85),
    "bed": (1.6, 2.0, 1.0),
    "door": (0.9, 0.14, 2.1),  # 4 cm leaf plus a 5 cm handle on each face
    "pillar": (0.4, 0.4, 3.0),
    "stairs": (1.0, 15 * 0.28, 15 * 0.18),
    "car": (1.8, 4.5, 1.45),
    "tree": (3.5, 3.5, 6.0),
    "rock": (1.0, 0.9, 0.7),
}

EXPECTED_SEAT_HEIGHTS = {"chair": 0.45, "sofa": 0.42, "bed": 0.55}

#: Pieces with non-default parameters that take other code paths.
VARIANTS = [
    ("wall", {"doors": [(0.0, 0.9, 2.1)], "windows": [(-1.3, 1.0, 1.2, 0.9), (1.4, 0.8, 0.5, 2.1)]}),
    ("wall", {"doors": [(-1.55, 0.9, 2.1)], "windows": [(-1.55, 0.9, 0.4, 2.2)]}),  # window over door, at the end
    ("pillar", {"round": True, "depth": 0.6}),
    ("tree", {"conifer": True}),
    ("rock", {"seed": 7}),
    ("stairs", {"steps": 1}),
    ("car", {"length": 3.0, "height": 2.5}),
]

ALL_BUILDS = [(kind, {}) for kind in PIECES] + VARIANTS
BUILD_IDS = [f"{kind}-{i}" for i, (kind, _params) in enumerate(ALL_BUILDS)]


# --------------------------------------------------------------------------- mesh helpers


def triangles(piece) -> np.ndarray:
    """The piece's faces as fan triangles, shape (n, 3, 3)."""
    verts = np.asarray(piece.verts, dtype=float)
    corners = [(face[0], face[i], face[i + 1]) for face in piece.faces for i in range(1, len(face) - 1)]
    return verts[np.asarray(corners)]


def winding_number(piece, point) -> float:
    """How many times the mesh wraps around ``point``: 1 inside a closed outward shell, 0 outside."""
    tri = triangles(piece) - np.asarray(point, dtype=float)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    la, lb, lc = (np.linalg.norm(v, axis=1) for v in (a, b, c))
    numerator = np.einsum("ij,ij->i", a, np.cross(b, c))
    denominator = (
        la * lb * lc
        + np.einsum("ij,ij->i", a, b) * lc
        + np.einsum("ij,ij->i", a, c) * lb
        + np.einsum("ij,ij->i", b, c) * la
    )
    return float(np.sum(2 * np.arctan2(numerator, denominator)) / (4 * math.pi))


def is_inside(piece, point) -> bool:
    return winding_number(piece, point) > 0.5


def shells(piece) -> list[list[int]]:
    return mesh_topology.shells(piece.verts, piece.faces)


def signed_volume(piece, face_indices) -> float:
    verts = np.asarray(piece.verts, dtype=float)
    volume = 0.0
    for index in face_indices:
        face = piece.faces[index]
        for i in range(1, len(face) - 1):
            a, b, c = verts[face[0]], verts[face[i]], verts[face[i + 1]]
            volume += float(np.dot(a, np.cross(b, c))) / 6
    return volume


def face_area(piece, face) -> float:
    """Area of a (planar or nearly planar) polygon, by Newell's method."""
    points = np.asarray([piece.verts[i] for i in face], dtype=float)
    return float(np.linalg.norm(np.sum(np.cross(points, np.roll(points, -1, axis=0)), axis=0)) / 2)


# --------------------------------------------------------------------------- catalogue


def test_catalogue_has_exactly_the_pieces_to_block_with():
    assert list(PIECES) == list(EXPECTED_DIMENSIONS)
    for key, spec in PIECES.items():
        assert spec.key == key
        assert spec.label and spec.description and "\n" not in spec.description
        assert spec.defaults
    assert [item[0] for item in set_pieces.PIECE_ITEMS] == list(PIECES)


def test_catalogue_defaults_are_real_world_sizes():
    assert dict(PIECES["table"].defaults) == {"width": 1.6, "depth": 0.9, "height": 0.75}
    assert PIECES["chair"].defaults["seat_height"] == 0.45 and PIECES["chair"].defaults["height"] == 0.9
    assert PIECES["sofa"].defaults["width"] == 2.0 and PIECES["sofa"].defaults["seat_height"] == 0.42
    assert PIECES["door"].defaults["width"] == 0.9 and PIECES["door"].defaults["height"] == 2.1
    assert PIECES["stairs"].defaults["rise"] == 0.18 and PIECES["stairs"].defaults["tread"] == 0.28
    wall = PIECES["wall"].defaults
    assert (wall["length"], wall["height"], wall["thickness"]) == (4.0, 2.7, 0.15)


@pytest.mark.parametrize("kind", list(PIECES))
def test_bounding_box_matches_real_world_size_and_sits_on_the_floor(kind):
    piece = build_piece(kind)
    low, high = np.min(piece.verts, axis=0), np.max(piece.verts, axis=0)
    expected = EXPECTED_DIMENSIONS[kind]
    assert piece.dimensions == pytest.approx(expected, abs=1e-9)
    assert high - low == pytest.approx(expected, abs=1e-9)
    # origin at the footprint centre, bottom on z=0
    assert low == pytest.approx([-expected[0] / 2, -expected[1] / 2, 0.0], abs=1e-9)


@pytest.mark.parametrize("kind", list(PIECES))
def test_only_seats_report_a_seat_height(kind):
    assert build_piece(kind).seat_height == EXPECTED_SEAT_HEIGHTS.get(kind)


@pytest.mark.parametrize(("kind", "seat_xy"), [("chair", (0.0, 0.0)), ("sofa", (0.0, -0.1)), ("bed", (0.0, -0.2))])
def test_the_seat_surface_is_at_the_seat_height(kind, seat_xy):
    piece = build_piece(kind)
    x, y = seat_xy
    assert is_inside(piece, (x, y, piece.seat_height - 0.01))
    assert not is_inside(piece, (x, y, piece.seat_height + 0.01))


def test_chair_back_is_behind_the_seat_toward_plus_y():
    chair = build_piece("chair")
    assert is_inside(chair, (0.0, 0.24, 0.8))  # back, at the +Y edge
    assert not is_inside(chair, (0.0, -0.24, 0.8))  # nothing above the front of the seat


def test_parameters_change_the_size():
    assert build_piece("table", width=2.4, height=0.9).dimensions == pytest.approx((2.4, 0.9, 0.9))
    assert build_piece("stairs", steps=4).dimensions == pytest.approx((1.0, 4 * 0.28, 4 * 0.18))
    assert build_piece("chair", seat_height=0.6, height=1.1).seat_height == 0.6
    assert build_piece("floor", width=3, depth=2).dimensions == pytest.approx((3.0, 2.0, 0.02))  # ints are fine


def test_each_stair_tread_is_one_rise_above_the_last():
    stairs = build_piece("stairs", steps=5)
    for step in range(5):
        y = -5 * 0.28 / 2 + (step + 0.5) * 0.28
        top = (step + 1) * 0.18
        assert is_inside(stairs, (0.0, y, top - 0.01))
        assert not is_inside(stairs, (0.0, y, top + 0.01))


def test_rock_is_the_same_for_a_seed_and_differs_between_seeds():
    assert build_piece("rock", seed=3).verts == build_piece("rock", seed=3).verts
    assert build_piece("rock", seed=3).verts != build_piece("rock", seed=4).verts
    assert build_piece("rock", seed=4).dimensions == pytest.approx((1.0, 0.9, 0.7))


def test_tree_canopy_starts_above_the_trunk():
    tree = build_piece("tree")
    assert is_inside(tree, (0.0, 0.0, 1.0))  # trunk
    assert not is_inside(tree, (0.5, 0.0, 1.0))  # clear under the canopy
    assert is_inside(tree, (1.2, 0.0, 4.0))  # canopy


# --------------------------------------------------------------------------- sound meshes


@pytest.mark.parametrize(("kind", "params"), ALL_BUILDS, ids=BUILD_IDS)
def test_mesh_is_closed_with_consistent_winding(kind, params):
    piece = build_piece(kind, **params)
    directed = {}
    for face in piece.faces:
        for a, b in zip(face, face[1:] + face[:1]):
            directed[(a, b)] = directed.get((a, b), 0) + 1
    assert all(count == 1 for count in directed.values()), "an edge is used twice in the same direction"
    assert all((b, a) in directed for a, b in directed), "an edge has a single face: the mesh is open"


@pytest.mark.parametrize(("kind", "params"), ALL_BUILDS, ids=BUILD_IDS)
def test_every_shell_has_outward_normals(kind, params):
    piece = build_piece(kind, **params)
    for faces in shells(piece):
        assert signed_volume(piece, faces) > 0
    assert winding_number(piece, (50.0, 50.0, 50.0)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("kind", "params"), ALL_BUILDS, ids=BUILD_IDS)
def test_no_degenerate_faces(kind, params):
    piece = build_piece(kind, **params)
    assert all(math.isfinite(c) for v in piece.verts for c in v)
    for face in piece.faces:
        assert len(face) >= 3 and len(set(face)) == len(face)
        assert face_area(piece, face) > 1e-6
    used = {i for face in piece.faces for i in face}
    assert used == set(range(len(piece.verts))), "loose vertices"


# --------------------------------------------------------------------------- walls and openings


def wall_with_openings():
    return build_piece("wall", doors=[(0.5, 0.9, 2.1)], windows=[(-1.2, 1.0, 1.2, 0.9)])


def test_door_opening_is_empty_and_the_wall_around_it_is_solid():
    wall = wall_with_openings()
    assert not is_inside(wall, (0.5, 0.0, 1.05))  # middle of the door
    assert not is_inside(wall, (0.9, 0.0, 0.05))  # near its bottom corner
    assert is_inside(wall, (0.5, 0.0, 2.4))  # lintel above it
    assert is_inside(wall, (1.5, 0.0, 1.05))  # solid wall beside it
    blocks = set_pieces.wall_blocks(4.0, 2.7, wall.openings)
    assert not any(x0 < 0.5 < x1 and z0 < 1.05 < z1 for x0, x1, z0, z1 in blocks)
    assert any(x0 < 1.5 < x1 and z0 < 1.05 < z1 for x0, x1, z0, z1 in blocks)


def test_window_opening_is_empty_at_sill_height_with_wall_below_and_above():
    wall = wall_with_openings()
    assert not is_inside(wall, (-1.2, 0.0, 0.9 + 0.6))  # middle of the window
    assert not is_inside(wall, (-1.2, 0.0, 0.92))  # just above the sill
    assert is_inside(wall, (-1.2, 0.0, 0.88))  # just below the sill
    assert is_inside(wall, (-1.2, 0.0, 2.2))  # above the window


def test_wall_reports_its_openings_in_its_own_coordinates():
    door, window = wall_with_openings().openings
    assert (door.kind, door.x_min, door.x_max, door.z_min, door.z_max) == pytest.approx(("door", 0.05, 0.95, 0.0, 2.1))
    assert (window.kind, window.x_min, window.z_min, window.z_max) == pytest.approx(("window", -1.7, 0.9, 2.1))


def test_wall_without_openings_is_one_box():
    wall = build_piece("wall")
    assert len(wall.verts) == 8 and len(wall.faces) == 6 and wall.openings == []


def test_openings_may_touch_and_stack_without_overlapping():
    wall = build_piece("wall", doors=[(0.0, 1.0, 2.0)], windows=[(1.0, 1.0, 1.0, 1.0), (0.0, 1.0, 0.5, 2.1)])
    assert not is_inside(wall, (0.0, 0.0, 1.0))  # door
    assert not is_inside(wall, (1.0, 0.0, 1.5))  # window beside it, sharing its edge
    assert not is_inside(wall, (0.0, 0.0, 2.3))  # window above the door
    assert is_inside(wall, (0.0, 0.0, 2.05))  # 10 cm of wall between door and window


@pytest.mark.parametrize(
    "openings",
    [
        {"doors": [(0.0, 0.9, 2.1)], "windows": [(0.5, 1.0, 1.0, 1.0)]},
        {"windows": [(0.0, 1.0, 1.0, 1.0), (0.9, 1.0, 1.0, 1.5)]},
        {"doors": [(0.0, 0.9, 2.1), (0.5, 0.9, 2.1)]},
    ],
)
def test_overlapping_openings_are_rejected(openings):
    with pytest.raises(ValueError, match=r"overlap; move one of them"):
        build_piece("wall", **openings)


@pytest.mark.parametrize(
    ("openings", "message"),
    [
        ({"doors": [(1.8, 0.9, 2.1)]}, "past the wall's right end"),
        ({"windows": [(-1.9, 0.5, 1.0, 1.0)]}, "past the wall's left end"),
        ({"windows": [(0.0, 1.0, 1.0, 2.0)]}, "above the wall's 2.7 m top"),
        ({"doors": [(0.0, 0.9, 3.0)]}, "above the wall's 2.7 m top"),
    ],
)
def test_openings_that_leave_the_wall_are_rejected(openings, message):
    with pytest.raises(ValueError, match=message):
        build_piece("wall", **openings)


@pytest.mark.parametrize(
    ("openings", "message"),
    [
        ({"doors": [(1.0, 2.0)]}, r"Each door is \(offset, width, height\)"),
        ({"windows": [(0.0, 1.0, 1.0)]}, r"Each window is \(offset, width, height, sill\)"),
        ({"doors": [(0.0, -0.9, 2.1)]}, "needs a positive width"),
        ({"windows": [(0.0, 1.0, 1.0, -0.5)]}, "sill below the floor"),
        ({"doors": 5}, "must be a list of openings"),
    ],
)
def test_badly_shaped_openings_are_rejected_with_a_sentence(openings, message):
    with pytest.raises(ValueError, match=message):
        build_piece("wall", **openings)


def test_openings_filling_the_wall_are_rejected():
    with pytest.raises(ValueError, match="leave nothing of the wall"):
        build_piece("wall", length=1.0, height=2.0, doors=[(0.0, 1.0, 2.0)])


def test_wall_params_spaces_a_standard_door_and_window_evenly():
    params = set_pieces.wall_params(4.0, 2.7, with_door=True, with_window=True)
    (door,), (window,) = params["doors"], params["windows"]
    # 4 m less 0.9 + 1.2 of openings leaves 1.9 m: three gaps of 1.9 / 3
    gap = 1.9 / 3
    assert door == pytest.approx((-2.0 + gap + 0.45, 0.9, 2.1))
    assert window == pytest.approx((2.0 - gap - 0.6, 1.2, 1.2, 0.9))
    wall = build_piece("wall", **params)
    assert not is_inside(wall, (door[0], 0.0, 1.0)) and not is_inside(wall, (window[0], 0.0, 1.5))
    assert is_inside(wall, ((door[0] + 0.45 + window[0] - 0.6) / 2, 0.0, 1.0))  # wall between them


def test_wall_params_centres_a_single_opening_and_may_have_none():
    (door,) = set_pieces.wall_params(3.0, 2.5, with_door=True)["doors"]
    (window,) = set_pieces.wall_params(3.0, 2.5, with_window=True)["windows"]
    assert door == pytest.approx((0.0, 0.9, 2.1)) and window == pytest.approx((0.0, 1.2, 1.2, 0.9))
    plain = set_pieces.wall_params(3.0, 2.5)
    assert plain == {"length": 3.0, "height": 2.5, "doors": [], "windows": []}
    assert build_piece("wall", **plain).dimensions == pytest.approx((3.0, 0.15, 2.5))


@pytest.mark.parametrize(
    ("length", "height", "message"),
    [
        (2.0, 2.7, r"A 2 m wall is too short for its openings; make it 2.4 m or longer"),
        (4.0, 2.1, r"A 2.1 m wall is too low for its openings; make it 2.2 m or higher"),
    ],
)
def test_wall_params_says_how_big_the_wall_must_be(length, height, message):
    with pytest.raises(ValueError, match=message):
        set_pieces.wall_params(length, height, with_door=True, with_window=True)


# --------------------------------------------------------------------------- bad input


def test_unknown_kind_is_rejected_naming_the_kinds_there_are():
    with pytest.raises(ValueError, match=r"no set piece called 'spaceship'; choose one of box, floor, .*chair"):
        build_piece("spaceship")


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("table", {"height": 0.0}, r"table's height must be a positive length"),
        ("box", {"width": -1.0}, r"box's width must be a positive length"),
        ("car", {"length": float("nan")}, r"car's length must be a positive length"),
        ("floor", {"depth": True}, r"floor's depth must be a positive length"),
        ("wall", {"thickness": "thin"}, r"wall's thickness must be a positive length"),
        ("stairs", {"steps": 0}, r"The stairs' steps must be a whole number of at least 1"),
        ("stairs", {"steps": 2.5}, r"whole number"),
        ("pillar", {"round": 1}, r"give True or False"),
        ("table", {"colour": "red"}, r"table has no parameter 'colour'; it takes width, depth, height"),
        ("chair", {"seat_height": 0.95}, r"chair's seat_height \(0.95 m\) must be below its height \(0.9 m\)"),
        ("sofa", {"arm_height": 0.3}, r"sofa's seat_height .* must be below its arm_height"),
        ("sofa", {"arm_height": 1.0}, r"arm_height .* must not be above its height"),
        ("bed", {"headboard_height": 0.5}, r"bed's mattress_height .* below its headboard_height"),
        ("tree", {"trunk_height": 7.0}, r"tree's trunk_height .* below its height"),
        ("tree", {"trunk_diameter": 4.0}, r"trunk_diameter .* below its canopy_diameter"),
    ],
)
def test_bad_parameters_are_rejected_with_a_sentence_naming_what_to_fix(kind, params, message):
    with pytest.raises(ValueError, match=message):
        build_piece(kind, **params)


def test_resolved_openings_are_plain_numbers_a_wall_takes_back():
    resolved = set_pieces.resolve_params("wall", doors=[[1, 0.9, 2.1]], windows=[(-1, 1, 1, 1)])
    assert resolved["doors"] == ((1.0, 0.9, 2.1),) and resolved["windows"] == ((-1.0, 1.0, 1.0, 1.0),)
    door, window = build_piece("wall", **resolved).openings
    assert door.numbers() == (1.0, 0.9, 2.1) and window.numbers() == (-1.0, 1.0, 1.0, 1.0)


def test_catalogue_defaults_cannot_be_changed_by_accident():
    with pytest.raises(TypeError):
        PIECES["table"].defaults["width"] = 3.0  # type: ignore[index]
    assert set_pieces.resolve_params("table", width=3.0)["width"] == 3.0
    assert PIECES["table"].defaults["width"] == 1.6


def test_pure_module_does_not_import_blender():
    source = (set_pieces.__file__ and open(set_pieces.__file__, encoding="utf-8").read()) or ""
    assert "import bpy" not in source and "mathutils" not in source
