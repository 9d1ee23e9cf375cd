# SPDX-License-Identifier: GPL-3.0-or-later
"""Numeric tests of the shot-framing maths: every size keeps its on-screen promise."""

import math

import numpy as np
import pytest

from standin.addon import framing
from standin.addon.framing import CameraPlacement, Subject, frame_subjects, project

SIZES = [s.key for s in framing.SHOT_SIZES]
WHOLE_FIGURE = ("EWS", "WS", "FS")
CLOSE = ("MS", "MCU", "CU", "ECU")
LENSES = (18.0, 35.0, 50.0, 85.0, 135.0)
ASPECTS = (2.39, 16 / 9, 9 / 16)
SENSORS = (24.89, 36.0)


def standing(name="Ann", location=(0.0, 0.0, 0.0), facing=(0.0, 1.0, 0.0), height=1.75) -> Subject:
    """A person standing at ``location`` facing ``facing``, with textbook proportions."""
    base = np.array(location, dtype=float)
    look = np.array(facing, dtype=float)
    look /= np.linalg.norm(look)
    right = np.cross(look, (0.0, 0.0, 1.0))

    def at(fraction, sideways=0.0):
        return tuple(base + (0.0, 0.0, fraction * height) + sideways * right)

    return Subject(name=name, height=height, head_top=at(1.0), eyes=at(0.94), neck=at(0.87), feet=at(0.0),
                   facing=tuple(look), right_shoulder=at(0.82, 0.2), left_shoulder=at(0.82, -0.2))


def lying(name="Lou", height=1.75) -> Subject:
    """A person lying on the floor along +Y, head at y = height, face up."""
    return Subject(name=name, height=height, head_top=(0.0, height, 0.2), eyes=(0.0, 0.94 * height, 0.25),
                   neck=(0.0, 0.87 * height, 0.2), feet=(0.0, 0.0, 0.1), facing=(0.0, 1.0, 0.0),
                   right_shoulder=(0.2, 0.82 * height, 0.2), left_shoulder=(-0.2, 0.82 * height, 0.2))


def screen(point, placement: CameraPlacement):
    return project(point, placement)


def band_misses(subject: Subject, size: str, placement: CameraPlacement) -> list[str]:
    assert screen(subject.head_top, placement)[2] > 0 and screen(subject.eyes, placement)[2] > 0
    return framing.bands_met(subject, placement, size)


# ------------------------------------------------------------------------------------------
# Projection and rotation basics
# ------------------------------------------------------------------------------------------

IDENTITY = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def test_project_matches_a_hand_computed_pinhole():
    # Camera at the origin looking down -Z; 50 mm on a 36 mm wide sensor, 3:2 frame (24 mm high).
    placement = CameraPlacement(IDENTITY, lens_mm=50.0, sensor_width_mm=36.0, aspect=1.5)
    x, y, z = project((0.1, 0.05, -2.0), placement)
    assert x == pytest.approx(0.5 + (0.1 / 2.0) * 50.0 / 36.0)  # 0.569444
    assert y == pytest.approx(0.5 + (0.05 / 2.0) * 50.0 / 24.0)  # 0.552083
    assert z == pytest.approx(2.0)
    assert project((0.0, 0.0, 3.0), placement)[2] == pytest.approx(-3.0)  # behind the camera


def test_project_follows_location_and_shift():
    moved = ((1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 2.0), (0.0, 0.0, 1.0, 3.0), (0.0, 0.0, 0.0, 1.0))
    placement = CameraPlacement(moved, lens_mm=50.0, sensor_width_mm=36.0, aspect=1.5, shift_x=0.1, shift_y=0.05)
    x, y, z = project((1.0, 2.0, 1.0), placement)  # straight ahead, 2 m away
    # Shift is in frame widths (horizontal sensor fit): the frame moves, the point moves the other way.
    assert (x, y, z) == pytest.approx((0.4, 0.5 - 0.05 * 1.5, 2.0))


def test_camera_rotation_is_right_handed_and_looks_where_asked():
    rotation = framing.camera_rotation(math.radians(30.0), math.radians(-10.0), math.radians(5.0))
    assert rotation.T @ rotation == pytest.approx(np.eye(3))
    assert np.cross(rotation[:, 0], rotation[:, 1]) == pytest.approx(rotation[:, 2])
    forward = -rotation[:, 2]
    assert math.degrees(math.atan2(forward[1], forward[0])) == pytest.approx(30.0)
    assert math.degrees(math.asin(forward[2])) == pytest.approx(-10.0)
    assert np.degrees(framing.rotation_angles(rotation)) == pytest.approx((30.0, -10.0, 5.0))


def test_placement_exposes_location_and_axes():
    rotation = framing.camera_rotation(0.0, 0.0)
    placement = CameraPlacement(framing.matrix_world(rotation, np.array((1.0, 2.0, 3.0))), 35.0, 24.89, 16 / 9)
    assert placement.location == pytest.approx((1.0, 2.0, 3.0))
    assert placement.forward == pytest.approx((1.0, 0.0, 0.0))
    assert placement.up == pytest.approx((0.0, 0.0, 1.0))
    assert placement.matrix_world[3] == (0.0, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------------------
# Sizes at eye level: every lens, aspect and sensor keeps the promise
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sensor", SENSORS)
@pytest.mark.parametrize("aspect", ASPECTS, ids=("scope", "hd", "vertical"))
@pytest.mark.parametrize("lens", LENSES)
@pytest.mark.parametrize("size", SIZES)
def test_eye_level_size_lands_in_its_band(size, lens, aspect, sensor):
    ann = standing()
    placement = frame_subjects([ann], size, lens, sensor, aspect, "EYE")
    assert band_misses(ann, size, placement) == []
    assert placement.location[2] == pytest.approx(ann.eyes[2], abs=1e-6)  # eye level means eye height
    if size in WHOLE_FIGURE:
        for point in (ann.head_top, ann.feet):
            assert 0.0 <= screen(point, placement)[0] <= 1.0


def test_bands_met_names_the_landmarks_that_miss():
    ann = standing()
    placement = frame_subjects([ann], "FS", 35.0)
    assert framing.bands_met(ann, placement, "FS") == []
    assert framing.bands_met(ann, placement, "MS") == ["eyes", "feet"]  # eyes too high, feet in frame
    assert framing.bands_met(ann, placement, "EWS") == ["head_top", "eyes", "feet", "figure_height"]


def test_band_table_covers_every_size_and_is_ordered():
    assert set(framing.SIZE_BANDS) == set(SIZES) == set(framing.SIZE_RULES)
    for band in framing.SIZE_BANDS.values():
        for low, high in (band.head_top, band.eyes, band.feet, band.figure_height):
            assert low < high
    # Wider sizes show a smaller figure.
    fractions = [framing.SIZE_RULES[s].frame_height_m(1.75) for s in SIZES]
    assert fractions == sorted(fractions, reverse=True)


@pytest.mark.parametrize(("size", "cut_height"), [("MS", 0.58), ("MCU", 0.72), ("CU", 0.80), ("ECU", 0.87)])
def test_close_sizes_cut_the_body_where_cinematography_says(size, cut_height):
    ann = standing()
    placement = frame_subjects([ann], size, 50.0)
    cut_point = (0.0, 0.0, cut_height * ann.height)
    assert screen(cut_point, placement)[1] == pytest.approx(0.0, abs=0.02)


def test_cut_follows_the_body_when_seated():
    # Seated: eyes 0.55 m lower than standing; the medium shot still cuts 0.36 x height under the eyes.
    ann = standing()
    drop = np.array((0.0, 0.0, -0.55))
    seated = Subject("Sid", ann.height, tuple(np.add(ann.head_top, drop)), tuple(np.add(ann.eyes, drop)),
                     tuple(np.add(ann.neck, drop)), ann.feet, ann.facing,
                     tuple(np.add(ann.right_shoulder, drop)), tuple(np.add(ann.left_shoulder, drop)))
    placement = frame_subjects([seated], "MS", 35.0)
    waist = np.add(seated.eyes, (0.0, 0.0, -0.36 * seated.height))
    assert screen(waist, placement)[1] == pytest.approx(0.0, abs=1e-6)
    assert screen(seated.eyes, placement)[1] == pytest.approx(2 / 3, abs=1e-6)


def test_normal_lenses_tilt_rather_than_shift():
    ann = standing()
    placement = frame_subjects([ann], "MS", 35.0, 24.89, 16 / 9, "EYE")
    assert placement.shift_y == 0.0
    _heading, pitch, _roll = framing.rotation_angles(np.array(placement.rotation))
    # At eye height the tilt that puts the eyes on the third is atan((sensor height / 6) / lens).
    assert math.degrees(pitch) == pytest.approx(-math.degrees(math.atan((24.89 / (16 / 9) / 6) / 35.0)), abs=1e-6)


def test_too_close_a_lens_is_framed_but_warned():
    placement = frame_subjects([standing()], "ECU", 18.0, 36.0, 9 / 16)
    assert "cm from Ann's eyes" in placement.warning
    assert frame_subjects([standing()], "MCU", 50.0).warning == ""


# ------------------------------------------------------------------------------------------
# Angles
# ------------------------------------------------------------------------------------------


def _angle_cases():
    for size in SIZES:
        for lens in LENSES:
            for aspect in ASPECTS:
                yield size, lens, aspect


@pytest.mark.parametrize("angle", ("LOW", "HIGH", "DUTCH"))
@pytest.mark.parametrize(("size", "lens", "aspect"), list(_angle_cases()))
def test_angles_keep_the_size(angle, size, lens, aspect):
    ann = standing()
    placement = frame_subjects([ann], size, lens, 24.89, aspect, angle)
    band = framing.SIZE_BANDS[size]
    head, eyes, feet = (screen(p, placement) for p in (ann.head_top, ann.eyes, ann.feet))
    if size in CLOSE:
        assert band.eyes[0] <= eyes[1] <= band.eyes[1]
        assert feet[1] < 0.0 or feet[2] <= 0.0  # feet out of the picture
    else:
        assert band.head_top[0] <= head[1] <= band.head_top[1]
        assert band.feet[0] <= feet[1] <= band.feet[1]
        assert band.figure_height[0] <= head[1] - feet[1] <= band.figure_height[1]
    if angle == "DUTCH":
        assert band_misses(ann, size, placement) == []


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lens", (18.0, 35.0, 85.0))
def test_low_is_below_and_high_above_the_eyes(size, lens):
    ann = standing()
    low = frame_subjects([ann], size, lens, angle="LOW")
    high = frame_subjects([ann], size, lens, angle="HIGH")
    assert low.location[2] < ann.eyes[2] - 0.05
    assert low.location[2] >= framing.LOW_MIN_CAMERA_HEIGHT - 1e-6
    assert high.location[2] > ann.eyes[2] + 0.05
    assert low.forward[2] > frame_subjects([ann], size, lens).forward[2]  # looks up more than eye level
    assert high.forward[2] < 0.0  # looks down


def test_low_and_high_look_at_the_eyes_at_their_angles():
    ann = standing()
    for angle, expected in (("LOW", 18.0), ("HIGH", -28.0)):
        placement = frame_subjects([ann], "MCU", 35.0, angle=angle)
        offset = np.subtract(ann.eyes, placement.location)
        sightline = math.degrees(math.atan2(offset[2], math.hypot(offset[0], offset[1])))
        assert sightline == pytest.approx(expected, abs=1e-3)
        assert placement.warning == ""


def test_low_angle_with_a_long_lens_stops_at_the_floor_and_says_so():
    ann = standing()
    placement = frame_subjects([ann], "MS", 135.0, angle="LOW")
    assert placement.location[2] == pytest.approx(framing.LOW_MIN_CAMERA_HEIGHT, abs=1e-6)
    assert "floor" in placement.warning
    assert screen(ann.eyes, placement)[1] == pytest.approx(2 / 3, abs=1e-6)


def test_dutch_rolls_the_horizon_at_eye_height():
    ann = standing()
    placement = frame_subjects([ann], "MS", 35.0, angle="DUTCH")
    _heading, _pitch, roll = framing.rotation_angles(np.array(placement.rotation))
    assert math.degrees(roll) == pytest.approx(15.0, abs=1e-6)
    assert placement.location[2] == pytest.approx(ann.eyes[2], abs=1e-6)
    # A level world line runs downhill to the right on screen.
    left = np.add(ann.neck, -0.3 * np.array(placement.right))
    right = np.add(ann.neck, 0.3 * np.array(placement.right))
    flat_left, flat_right = np.array(left), np.array(right)
    flat_left[2] = flat_right[2] = ann.neck[2]
    assert screen(flat_right, placement)[1] < screen(flat_left, placement)[1]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("aspect", ASPECTS)
def test_overhead_looks_straight_down_with_the_subject_centred(size, aspect):
    ann = standing(facing=(1.0, 1.0, 0.0))
    placement = frame_subjects([ann], size, 35.0, aspect=aspect, angle="OVERHEAD")
    assert placement.forward == pytest.approx((0.0, 0.0, -1.0))
    assert placement.location[2] > ann.head_top[2]
    assert screen(ann.eyes, placement)[:2] == pytest.approx((0.5, 0.5), abs=1e-6)
    # The way the character faces is the top of the frame.
    assert np.array(placement.up) @ np.array(ann.facing) == pytest.approx(1.0)


def test_overhead_puts_a_lying_characters_head_at_the_top():
    lou = lying()
    placement = frame_subjects([lou], "FS", 35.0, angle="OVERHEAD")
    head, feet = screen(lou.head_top, placement), screen(lou.feet, placement)
    assert head[1] > feet[1]
    assert 0.0 < feet[1] and head[1] < 1.0
    assert (head[0] + feet[0]) / 2 == pytest.approx(0.5, abs=1e-6)


# ------------------------------------------------------------------------------------------
# Lead room and azimuth
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lens", LENSES)
@pytest.mark.parametrize("aspect", (2.39, 16 / 9))
@pytest.mark.parametrize("size", CLOSE)
def test_lead_room_puts_the_subject_on_the_third_behind_its_look(size, lens, aspect):
    ann = standing()
    looks_right = frame_subjects([ann], size, lens, aspect=aspect, azimuth_deg=-30.0)
    looks_left = frame_subjects([ann], size, lens, aspect=aspect, azimuth_deg=30.0)
    # The facing direction confirms which way the character looks on screen.
    assert np.array(ann.facing) @ np.array(looks_right.right) > 0
    assert np.array(ann.facing) @ np.array(looks_left.right) < 0
    assert screen(ann.eyes, looks_right)[0] == pytest.approx(1 / 3, abs=1e-6)
    assert screen(ann.eyes, looks_left)[0] == pytest.approx(2 / 3, abs=1e-6)


@pytest.mark.parametrize("size", WHOLE_FIGURE)
def test_lead_room_for_whole_figures_places_the_body(size):
    ann = standing()
    placement = frame_subjects([ann], size, 35.0, azimuth_deg=-30.0)
    middle = np.add(ann.head_top, ann.feet) / 2
    assert screen(middle, placement)[0] == pytest.approx(1 / 3, abs=1e-6)
    assert screen(ann.eyes, placement)[0] == pytest.approx(1 / 3, abs=0.02)


def test_looking_into_the_lens_is_centred():
    ann = standing()
    for size in ("FS", "MS", "CU"):
        placement = frame_subjects([ann], size, 50.0, azimuth_deg=0.0)
        assert screen(ann.eyes, placement)[0] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("azimuth", (0.0, 25.0, 90.0, -60.0))
def test_azimuth_is_counter_clockwise_from_the_facing_toward_the_left(azimuth):
    ann = standing(location=(2.0, -1.0, 0.0), facing=(1.0, 0.0, 0.0))
    placement = frame_subjects([ann], "MS", 50.0, azimuth_deg=azimuth)
    offset = np.subtract(placement.location, ann.eyes)
    where = math.degrees(math.atan2(offset[1], offset[0]))  # facing +X is 0 degrees
    assert where == pytest.approx(azimuth, abs=3.0)
    if azimuth == 90.0:  # facing +X, the character's left is +Y
        assert offset[1] > 0


# ------------------------------------------------------------------------------------------
# Two-shot and over-the-shoulder
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lens", (18.0, 35.0, 85.0))
@pytest.mark.parametrize("aspect", ASPECTS)
def test_two_shot_keeps_both_in_frame(size, lens, aspect):
    ann = standing("Ann", (-0.6, 0.0, 0.0), (1.0, -0.3, 0.0))
    bob = standing("Bob", (0.6, 0.0, 0.0), (-1.0, -0.3, 0.0), height=1.9)
    placement = frame_subjects([ann, bob], size, lens, aspect=aspect, variant="TWO_SHOT")
    for person in (ann, bob):
        x, y, depth = screen(person.eyes, placement)
        assert 0.1 <= x <= 0.9 and 0.0 <= y <= 1.0 and depth > 0
    # Their mean facing points to -Y: the camera stands on that side, square to the line between them.
    assert placement.location[1] < 0
    assert placement.forward[0] == pytest.approx(0.0, abs=1e-9)
    assert screen(ann.eyes, placement)[0] < screen(bob.eyes, placement)[0]
    if size in CLOSE:  # the taller one sets the size
        assert screen(bob.eyes, placement)[1] == pytest.approx(2 / 3, abs=1e-6)


def test_two_shot_flips_to_the_side_they_face():
    ann = standing("Ann", (-0.6, 0.0, 0.0), (0.3, 1.0, 0.0))
    bob = standing("Bob", (0.6, 0.0, 0.0), (-0.3, 1.0, 0.0))
    placement = frame_subjects([ann, bob], "MS", 35.0, variant="TWO_SHOT")
    assert placement.location[1] > 0
    assert screen(bob.eyes, placement)[0] < screen(ann.eyes, placement)[0]


def _conversation():
    tess = standing("Tess", (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    finn = standing("Finn", (0.0, 1.2, 0.0), (0.0, -1.0, 0.0))
    return finn, tess


@pytest.mark.parametrize("sensor", SENSORS)
@pytest.mark.parametrize(("size", "lens", "aspect"), [("MCU", 85.0, 16 / 9), ("MS", 50.0, 16 / 9),
                                                      ("MCU", 135.0, 2.39), ("CU", 135.0, 16 / 9)])
@pytest.mark.parametrize("azimuth", (25.0, -25.0))
def test_over_the_shoulder_frames_the_far_character_past_the_near_shoulder(size, lens, aspect, sensor, azimuth):
    finn, tess = _conversation()
    placement = frame_subjects([finn, tess], size, lens, sensor, aspect, variant="OTS", azimuth_deg=azimuth)
    assert placement.warning == ""
    eyes_x, eyes_y, eyes_depth = screen(tess.eyes, placement)
    third = 2 / 3 if azimuth > 0 else 1 / 3
    assert eyes_x == pytest.approx(third, abs=1e-6)
    assert framing.SIZE_BANDS[size].eyes[0] <= eyes_y <= framing.SIZE_BANDS[size].eyes[1]
    shoulders = [screen(s, placement) for s in (finn.right_shoulder, finn.left_shoulder)]
    near = min(shoulders, key=lambda s: s[2])
    assert 0.0 <= near[0] <= 1.0 and 0.0 <= near[1] <= 1.0
    assert (near[0] < 0.5) if azimuth > 0 else (near[0] > 0.5)  # the opposite side to Tess
    assert 0.0 < near[2] < eyes_depth  # nearer the camera than Tess
    # Behind Finn: the camera is further from Tess than Finn is.
    assert np.linalg.norm(np.subtract(placement.location, tess.eyes)) > 1.2


def test_over_the_shoulder_with_too_wide_a_lens_warns_and_stays_behind():
    finn, tess = _conversation()
    placement = frame_subjects([finn, tess], "CU", 18.0, variant="OTS")
    assert "Finn" in placement.warning
    assert screen(tess.eyes, placement)[0] == pytest.approx(2 / 3, abs=1e-6)
    near = min((screen(s, placement) for s in (finn.right_shoulder, finn.left_shoulder)), key=lambda s: s[2])
    assert 0.0 < near[2] < screen(tess.eyes, placement)[2]


# ------------------------------------------------------------------------------------------
# Bad requests
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"size": "XL"}, "Unknown shot size"),
    ({"size": "MS", "angle": "SIDEWAYS"}, "Unknown camera angle"),
    ({"size": "MS", "variant": "CROWD"}, "Unknown framing"),
    ({"size": "MS", "lens_mm": 0.0}, "lens must be longer than 0 mm"),
    ({"size": "MS", "lens_mm": -35.0}, "lens must be longer than 0 mm"),
    ({"size": "MS", "variant": "TWO_SHOT"}, "two-shot needs 2 characters"),
    ({"size": "MS", "variant": "OTS"}, "over-the-shoulder shot needs 2 characters"),
])
def test_bad_requests_raise_a_sentence(kwargs, words):
    with pytest.raises(ValueError, match=words) as raised:
        frame_subjects([standing()], **kwargs)
    assert str(raised.value).endswith(".")


def test_no_subject_or_zero_height_raises():
    with pytest.raises(ValueError, match="needs 1 character"):
        frame_subjects([], "MS")
    flat = Subject("Ghost", 0.0, (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 1, 0), (0, 0, 0), (0, 0, 0))
    with pytest.raises(ValueError, match="Ghost.*no height"):
        frame_subjects([flat], "MS")
