# SPDX-License-Identifier: GPL-3.0-or-later
"""Numeric tests of camera moves: easing curves and what each move does to the camera."""

import math

import numpy as np
import pytest

from standin.addon import camera_moves, framing
from standin.addon.camera_moves import CameraKey, ease, move_keys
from standin.addon.framing import CameraPlacement, Subject, frame_subjects, project

EASINGS = [key for key, _label, _description in camera_moves.EASINGS]
TRAVELLING_MOVES = [key for key, _label, _description in camera_moves.MOVES if key != "STATIC"]


def standing(height=1.75) -> Subject:
    """A person at the origin facing +Y (eyes at 0.94 of the height)."""

    def at(fraction, sideways=0.0):
        return (sideways, 0.0, fraction * height)

    return Subject("Ann", height, head_top=at(1.0), eyes=at(0.94), neck=at(0.87), feet=at(0.0),
                   facing=(0.0, 1.0, 0.0), right_shoulder=at(0.82, 0.2), left_shoulder=at(0.82, -0.2))


@pytest.fixture
def shot() -> CameraPlacement:
    """A medium shot of Ann: camera at eye height, slightly tilted down, eyes on a third."""
    return frame_subjects([standing()], "MS", 35.0)


def as_placement(key: CameraKey, like: CameraPlacement) -> CameraPlacement:
    return CameraPlacement(key.matrix_world, key.lens_mm, like.sensor_width_mm, like.aspect,
                           like.shift_x, like.shift_y)


def location(key: CameraKey) -> np.ndarray:
    return np.array([row[3] for row in key.matrix_world[:3]])


def rotation(key: CameraKey) -> np.ndarray:
    return np.array([row[:3] for row in key.matrix_world[:3]])


def forward(key: CameraKey) -> np.ndarray:
    return -rotation(key)[:, 2]


# ------------------------------------------------------------------------------------------
# Easing
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("easing", EASINGS)
def test_ease_starts_at_0_ends_at_1_and_never_goes_back(easing):
    assert ease(easing, 0.0) == 0.0
    assert ease(easing, 1.0) == pytest.approx(1.0)
    values = [ease(easing, t) for t in np.linspace(0.0, 1.0, 101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert ease(easing, -0.5) == 0.0 and ease(easing, 1.5) == pytest.approx(1.0)  # clamped


def test_ease_shapes():
    assert ease("LINEAR", 0.25) == pytest.approx(0.25)
    assert ease("EASE_IN", 0.5) == pytest.approx(0.25)  # slow start
    assert ease("EASE_OUT", 0.5) == pytest.approx(0.75)  # slow end
    assert ease("EASE_IN_OUT", 0.5) == pytest.approx(0.5)
    assert ease("EASE_IN_OUT", 0.1) < 0.1 and ease("EASE_IN_OUT", 0.9) > 0.9  # slow at both ends


def test_unknown_easing_raises():
    with pytest.raises(ValueError, match="Unknown easing"):
        ease("BOUNCE", 0.5)


# ------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("move", TRAVELLING_MOVES)
def test_one_key_per_frame_starting_where_the_shot_starts(shot, move):
    keys = move_keys(shot, move, 10.0, 101, 148)
    assert len(keys) == 148 - 101 + 1
    assert [k.frame for k in keys] == list(range(101, 149))
    assert np.array(keys[0].matrix_world) == pytest.approx(np.array(shot.matrix_world))
    assert keys[0].lens_mm == shot.lens_mm


def test_static_is_a_single_key(shot):
    keys = move_keys(shot, "STATIC", 5.0, 1, 48)
    assert len(keys) == 1
    assert keys[0].frame == 1 and keys[0].matrix_world == shot.matrix_world and keys[0].lens_mm == shot.lens_mm


def test_a_one_frame_shot_has_one_key(shot):
    keys = move_keys(shot, "DOLLY_IN", 1.0, 12, 12)
    assert len(keys) == 1 and location(keys[0]) == pytest.approx(shot.location)


@pytest.mark.parametrize(("args", "words"), [
    (("PAN", 10.0, 48, 1), "ends \\(frame 1\\) before it starts \\(frame 48\\)"),
    (("WHIP", 10.0, 1, 48), "Unknown camera move"),
])
def test_bad_moves_raise_a_sentence(shot, args, words):
    with pytest.raises(ValueError, match=words):
        move_keys(shot, *args)


def test_unknown_easing_in_a_move_raises(shot):
    with pytest.raises(ValueError, match="Unknown easing"):
        move_keys(shot, "PAN", 10.0, 1, 48, easing="WOBBLE")


# ------------------------------------------------------------------------------------------
# What each move does
# ------------------------------------------------------------------------------------------


def heading_deg(direction) -> float:
    return math.degrees(math.atan2(direction[1], direction[0]))


def test_pan_turns_about_the_vertical_on_the_spot(shot):
    keys = move_keys(shot, "PAN", 40.0, 1, 25)
    for key in keys:
        assert location(key) == pytest.approx(shot.location)
        assert forward(key)[2] == pytest.approx(shot.forward[2])  # tilt unchanged
    assert heading_deg(forward(keys[-1])) - heading_deg(shot.forward) == pytest.approx(40.0)  # positive: left
    assert rotation(keys[-1])[2, 0] == pytest.approx(0.0, abs=1e-12)  # horizon stays level


def test_tilt_pitches_about_the_cameras_own_x(shot):
    keys = move_keys(shot, "TILT", 12.0, 1, 25)
    start_pitch = math.degrees(math.asin(shot.forward[2]))
    end = keys[-1]
    assert location(end) == pytest.approx(shot.location)
    assert math.degrees(math.asin(forward(end)[2])) == pytest.approx(start_pitch + 12.0)
    assert rotation(end)[:, 0] == pytest.approx(shot.right)  # turned about its own X
    assert heading_deg(forward(end)) == pytest.approx(heading_deg(shot.forward))


@pytest.mark.parametrize(("move", "sign"), [("DOLLY_IN", 1.0), ("DOLLY_OUT", -1.0)])
def test_dolly_travels_along_the_view(shot, move, sign):
    keys = move_keys(shot, move, 1.5, 1, 25)
    expected_end = np.array(shot.location) + sign * 1.5 * np.array(shot.forward)
    assert location(keys[-1]) == pytest.approx(expected_end)
    for key in keys:
        assert rotation(key) == pytest.approx(np.array(shot.rotation))
        travelled = location(key) - np.array(shot.location)
        assert np.cross(travelled, shot.forward) == pytest.approx(np.zeros(3), abs=1e-12)


def test_dolly_in_brings_the_subject_closer(shot):
    ann = standing()
    keys = move_keys(shot, "DOLLY_IN", 1.0, 1, 25)
    assert project(ann.eyes, as_placement(keys[-1], shot))[2] == pytest.approx(project(ann.eyes, shot)[2] - 1.0)


def test_truck_travels_to_screen_right(shot):
    keys = move_keys(shot, "TRUCK", -2.0, 1, 25)
    assert location(keys[-1]) == pytest.approx(np.array(shot.location) - 2.0 * np.array(shot.right))
    assert rotation(keys[-1]) == pytest.approx(np.array(shot.rotation))


def test_easing_shapes_the_travel(shot):
    linear = move_keys(shot, "DOLLY_IN", 2.0, 0, 10, easing="LINEAR")
    eased = move_keys(shot, "DOLLY_IN", 2.0, 0, 10, easing="EASE_IN")
    start = np.array(shot.location)
    assert np.linalg.norm(location(linear[5]) - start) == pytest.approx(1.0)
    assert np.linalg.norm(location(eased[5]) - start) == pytest.approx(0.5)
    assert location(eased[-1]) == pytest.approx(location(linear[-1]))


def test_orbit_circles_the_pivot_keeping_it_in_place_on_screen(shot):
    ann = standing()
    pivot = ann.eyes
    keys = move_keys(shot, "ORBIT", 90.0, 1, 25, pivot=pivot)
    start_screen = project(pivot, shot)
    start_distance = np.linalg.norm(np.array(shot.location) - pivot)
    for key in keys:
        assert np.linalg.norm(location(key) - pivot) == pytest.approx(start_distance)
        assert location(key)[2] == pytest.approx(shot.location[2])
        assert project(pivot, as_placement(key, shot)) == pytest.approx(start_screen)
    # A quarter turn counter-clockwise seen from above.
    before = np.array(shot.location) - pivot
    after = location(keys[-1]) - pivot
    turned = math.degrees(math.atan2(after[1], after[0]) - math.atan2(before[1], before[0])) % 360
    assert turned == pytest.approx(90.0)


def test_orbit_defaults_to_a_pivot_three_metres_ahead(shot):
    keys = move_keys(shot, "ORBIT", 45.0, 1, 9, easing="LINEAR")
    pivot = np.array(shot.location) + 3.0 * np.array(shot.forward)
    for key in keys:
        assert np.linalg.norm(location(key) - pivot) == pytest.approx(3.0)
        assert project(pivot, as_placement(key, shot))[:2] == pytest.approx(project(pivot, shot)[:2])


@pytest.mark.parametrize("rise", (2.0, -1.0))
def test_crane_rises_and_keeps_the_pivot_framed(shot, rise):
    ann = standing()
    pivot = ann.eyes
    keys = move_keys(shot, "CRANE", rise, 1, 25, pivot=pivot)
    assert location(keys[-1]) == pytest.approx(np.array(shot.location) + (0.0, 0.0, rise))
    start_screen = project(pivot, shot)
    for key in keys:
        x, y, depth = project(pivot, as_placement(key, shot))
        assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and depth > 0
        assert (x, y) == pytest.approx(start_screen[:2], abs=1e-6)
        assert location(key)[:2] == pytest.approx(shot.location[:2])
        assert rotation(key)[2, 0] == pytest.approx(0.0, abs=1e-9)  # the horizon stays level
    assert forward(keys[-1])[2] < shot.forward[2] if rise > 0 else forward(keys[-1])[2] > shot.forward[2]


def test_crane_keeps_a_dutch_roll(shot):
    dutch = frame_subjects([standing()], "MCU", 50.0, angle="DUTCH")
    keys = move_keys(dutch, "CRANE", 1.0, 1, 5, pivot=standing().eyes)
    roll = framing.rotation_angles(rotation(keys[-1]))[2]
    assert math.degrees(roll) == pytest.approx(15.0)
    assert project(standing().eyes, as_placement(keys[-1], dutch))[:2] == pytest.approx(
        project(standing().eyes, dutch)[:2], abs=1e-6)


def test_zoom_changes_only_the_lens(shot):
    keys = move_keys(shot, "ZOOM", 50.0, 1, 25)
    assert keys[-1].lens_mm == pytest.approx(85.0)
    assert all(np.array(k.matrix_world) == pytest.approx(np.array(shot.matrix_world)) for k in keys)
    lenses = [k.lens_mm for k in keys]
    assert lenses == sorted(lenses)


def test_zoom_out_stops_at_the_widest_lens(shot):
    keys = move_keys(shot, "ZOOM", -100.0, 1, 25)
    assert keys[-1].lens_mm == pytest.approx(camera_moves.MIN_LENS_MM)
    assert min(k.lens_mm for k in keys) >= camera_moves.MIN_LENS_MM
