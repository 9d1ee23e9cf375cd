# SPDX-License-Identifier: GPL-3.0-or-later
"""Numeric tests of the OpenPose COCO-18 drawing, JSON and joint visibility."""

import json
import math
import random
from typing import NamedTuple, Optional

import cv2
import numpy as np
import pytest

from standin.addon import openpose
from standin.addon.openpose import COCO18_COLORS, COCO18_LIMBS, draw_pose, limb_color, pose_json, visible_joints

# A spread-out standing figure on a 400 x 400 canvas, joints at least 10 px apart.
FIGURE = [
    (200.0, 60.0),  # 0 nose
    (200.0, 110.0),  # 1 neck
    (150.0, 110.0),  # 2 right shoulder
    (110.0, 150.0),  # 3 right elbow
    (80.0, 200.0),  # 4 right wrist
    (250.0, 110.0),  # 5 left shoulder
    (290.0, 150.0),  # 6 left elbow
    (320.0, 200.0),  # 7 left wrist
    (170.0, 220.0),  # 8 right hip
    (165.0, 290.0),  # 9 right knee
    (160.0, 360.0),  # 10 right ankle
    (230.0, 220.0),  # 11 left hip
    (235.0, 290.0),  # 12 left knee
    (240.0, 360.0),  # 13 left ankle
    (185.0, 45.0),  # 14 right eye
    (215.0, 45.0),  # 15 left eye
    (165.0, 55.0),  # 16 right ear
    (235.0, 55.0),  # 17 left ear
]
SIZE = 400


def distance_to_segment(point, start, end) -> float:
    p, a, b = (np.asarray(v, dtype=float) for v in (point, start, end))
    along = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + along * (b - a))))


def colour_at(canvas, x, y) -> tuple:
    return tuple(int(c) for c in canvas[int(y), int(x)])


# ---- constants -----------------------------------------------------------------------------


def test_constants_match_the_note():
    assert COCO18_LIMBS == (
        (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
        (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
    )  # fmt: skip
    assert len(COCO18_COLORS) == 18 and len(set(COCO18_COLORS)) == 18
    assert COCO18_COLORS[0] == (255, 0, 0) and COCO18_COLORS[12] == (0, 0, 255) and COCO18_COLORS[17] == (255, 0, 85)
    assert openpose.STICK_WIDTH == 4 and openpose.JOINT_RADIUS == 4
    assert limb_color(1) == [153, 51, 0]  # int(255 * 0.6), int(85 * 0.6), 0


def test_canvas_is_black_rgb_uint8_of_the_requested_size():
    canvas = draw_pose(240, 320, [])
    assert canvas.shape == (240, 320, 3) and canvas.dtype == np.uint8 and not canvas.any()


# ---- drawing -------------------------------------------------------------------------------


def test_every_joint_centre_has_exactly_its_colour():
    canvas = draw_pose(SIZE, SIZE, [FIGURE])
    for joint, (x, y) in enumerate(FIGURE):
        assert colour_at(canvas, x, y) == COCO18_COLORS[joint], joint


def test_joint_disc_has_radius_four():
    canvas = draw_pose(SIZE, SIZE, [FIGURE])
    x, y = (int(v) for v in FIGURE[4])  # right wrist, the end of a limb pointing down-left
    for dx, dy in ((4, 0), (0, -4), (0, 4), (3, 2)):
        assert colour_at(canvas, x + dx, y + dy) == COCO18_COLORS[4]


def test_limb_middles_are_their_colour_times_0_6():
    canvas = draw_pose(SIZE, SIZE, [FIGURE])
    for limb, (a, b) in enumerate(COCO18_LIMBS):
        start, end = FIGURE[a - 1], FIGURE[b - 1]
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        # The figure is laid out so no joint disc and no later limb covers a limb's middle.
        assert min(math.dist(middle, joint) for joint in FIGURE) > openpose.JOINT_RADIUS + 2
        later = COCO18_LIMBS[limb + 1 :]
        assert all(distance_to_segment(middle, FIGURE[p - 1], FIGURE[q - 1]) > 6 for p, q in later)
        assert colour_at(canvas, *middle) == tuple(limb_color(limb)), limb


def test_limb_is_an_ellipse_along_the_limb_of_half_width_four():
    # Right upper arm (limb 2, joints 3-4 one-based) drawn alone, horizontal from x=100 to x=200 at y=100.
    person = [None] * 18
    person[2], person[3] = (100.0, 100.0), (200.0, 100.0)
    canvas = draw_pose(200, 300, [person])
    limb = tuple(limb_color(2))
    assert colour_at(canvas, 150, 100) == limb
    assert colour_at(canvas, 150, 104) == limb and colour_at(canvas, 150, 96) == limb
    assert not canvas[106, 150].any() and not canvas[94, 150].any()  # four px half-width, not more
    assert colour_at(canvas, 120, 100) == limb and colour_at(canvas, 180, 100) == limb  # runs along x


def test_diagonal_limb_runs_along_the_joints_not_across():
    person = [None] * 18
    person[5], person[6] = (100.0, 100.0), (200.0, 200.0)  # left shoulder to left elbow: limb 4
    canvas = draw_pose(300, 300, [person])
    limb = tuple(limb_color(4))
    for t in (0.2, 0.35, 0.65, 0.8):
        assert colour_at(canvas, 100 + 100 * t, 100 + 100 * t) == limb
    assert not canvas[130, 170].any() and not canvas[170, 130].any()  # the other diagonal is empty


def test_a_missing_joint_removes_its_disc_and_every_limb_touching_it():
    person = list(FIGURE)
    person[6] = None  # left elbow: limbs (6,7) and (7,8), one-based, i.e. limbs 4 and 5
    canvas = draw_pose(SIZE, SIZE, [person])
    colours = {tuple(c) for c in canvas.reshape(-1, 3)}
    assert COCO18_COLORS[6] not in colours
    assert tuple(limb_color(4)) not in colours and tuple(limb_color(5)) not in colours
    assert COCO18_COLORS[5] in colours and COCO18_COLORS[7] in colours  # its neighbours still drawn
    x, y = (int(v) for v in FIGURE[6])
    assert not canvas[y - 6 : y + 7, x - 6 : x + 7].any()
    full = draw_pose(SIZE, SIZE, [FIGURE])
    far_from_elbow = np.ones((SIZE, SIZE), dtype=bool)
    far_from_elbow[40:260, 230:340] = False
    assert np.array_equal(canvas[far_from_elbow], full[far_from_elbow])


def test_later_limbs_paint_over_earlier_ones():
    # Right upper arm (limb 2) and left upper arm (limb 4) cross in an X at (150, 150).
    person = [None] * 18
    person[2], person[3] = (100.0, 100.0), (200.0, 200.0)
    person[5], person[6] = (100.0, 200.0), (200.0, 100.0)
    canvas = draw_pose(300, 300, [person])
    assert colour_at(canvas, 150, 150) == tuple(limb_color(4))
    assert colour_at(canvas, 120, 120) == tuple(limb_color(2))


def test_joints_paint_over_limbs_and_people_are_drawn_one_after_another():
    first = [None] * 18
    first[0], first[1] = (100.0, 50.0), (100.0, 150.0)  # nose and neck
    second = [None] * 18
    second[2], second[3] = (50.0, 50.0), (150.0, 50.0)  # a limb straight through the first's nose
    canvas = draw_pose(200, 200, [first, second])
    # controlnet_aux draws each person's limbs then joints, so the second's limb covers the first's nose.
    assert colour_at(canvas, 100, 50) == tuple(limb_color(2))
    assert colour_at(canvas, 100, 150) == COCO18_COLORS[1]
    alone = draw_pose(200, 200, [first])
    assert colour_at(alone, 100, 50) == COCO18_COLORS[0]


def test_drawing_onto_a_given_canvas_keeps_what_is_there():
    canvas = np.full((SIZE, SIZE, 3), 7, dtype=np.uint8)
    result = draw_pose(SIZE, SIZE, [FIGURE], canvas=canvas)
    assert result is canvas and tuple(canvas[0, 0]) == (7, 7, 7)
    assert colour_at(canvas, *FIGURE[1]) == COCO18_COLORS[1]
    with pytest.raises(ValueError):
        draw_pose(SIZE, SIZE, [FIGURE], canvas=np.zeros((10, 10, 3), dtype=np.uint8))


def test_a_person_must_have_eighteen_joints():
    with pytest.raises(ValueError, match="18"):
        draw_pose(SIZE, SIZE, [FIGURE[:17]])


# ---- controlnet_aux reference --------------------------------------------------------------


class Keypoint(NamedTuple):
    x: float
    y: float
    score: float = 1.0
    id: int = -1


def controlnet_aux_draw_bodypose(canvas: np.ndarray, keypoints: list[Optional[Keypoint]]) -> np.ndarray:
    """controlnet_aux 0.0.10 ``draw_bodypose`` as the note describes it: normalised keypoints x W, H."""
    H, W, C = canvas.shape
    stickwidth = 4
    limbSeq = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
               [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]  # fmt: skip
    colors = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
              [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
              [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]  # fmt: skip
    for (k1_index, k2_index), color in zip(limbSeq, colors):
        keypoint1 = keypoints[k1_index - 1]
        keypoint2 = keypoints[k2_index - 1]
        if keypoint1 is None or keypoint2 is None:
            continue
        Y = np.array([keypoint1.x, keypoint2.x]) * float(W)
        X = np.array([keypoint1.y, keypoint2.y]) * float(H)
        mX = np.mean(X)
        mY = np.mean(Y)
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), stickwidth), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(float(c) * 0.6) for c in color])
    for keypoint, color in zip(keypoints, colors):
        if keypoint is None:
            continue
        x, y = keypoint.x, keypoint.y
        x = int(x * W)
        y = int(y * H)
        cv2.circle(canvas, (int(x), int(y)), 4, color, thickness=-1)
    return canvas


def random_people(rng: random.Random, count: int) -> list[list[Optional[Keypoint]]]:
    people = []
    for _ in range(count):
        centre = (rng.random(), rng.random())
        spread = rng.uniform(0.02, 0.5)
        person = []
        for _ in range(18):
            if rng.random() < 0.15:
                person.append(None)
                continue
            x = min(max(centre[0] + rng.uniform(-spread, spread), 0.0), 0.999)
            y = min(max(centre[1] + rng.uniform(-spread, spread), 0.0), 0.999)
            person.append(Keypoint(x, y))
        people.append(person)
    return people


@pytest.mark.parametrize("height, width", [(512, 512), (432, 768), (768, 432), (101, 257)])
def test_pixel_identical_to_controlnet_aux(height, width):
    rng = random.Random(height * 7919 + width)
    for _ in range(25):
        people = random_people(rng, rng.randint(1, 3))
        if rng.random() < 0.3:  # coincident joints: a zero-length limb
            people[0][2] = people[0][1]
        expected = np.zeros((height, width, 3), dtype=np.uint8)
        for person in people:
            expected = controlnet_aux_draw_bodypose(expected, person)
        in_pixels = [[None if k is None else (k.x * width, k.y * height) for k in person] for person in people]
        actual = draw_pose(height, width, in_pixels)
        assert np.array_equal(actual, expected)


def test_figure_is_pixel_identical_to_controlnet_aux():
    # Normalised the way a Blender projection gives them; x / 400 * 400 need not be x again, and
    # controlnet_aux truncates, so the pixels handed to draw_pose are u * W exactly as it computes them.
    person = [Keypoint(x / SIZE, y / SIZE) for x, y in FIGURE]
    expected = controlnet_aux_draw_bodypose(np.zeros((SIZE, SIZE, 3), dtype=np.uint8), person)
    in_pixels = [(k.x * SIZE, k.y * SIZE) for k in person]
    assert np.array_equal(draw_pose(SIZE, SIZE, [in_pixels]), expected)


# ---- JSON ----------------------------------------------------------------------------------


def test_pose_json_layout():
    person = list(FIGURE)
    person[3] = None
    document = pose_json([person, FIGURE], width=640, height=480)
    assert set(document) == {"version", "people", "canvas_width", "canvas_height"}
    assert document["version"] == 1.3 and document["canvas_width"] == 640 and document["canvas_height"] == 480
    assert len(document["people"]) == 2
    keypoints = document["people"][0]["pose_keypoints_2d"]
    assert len(keypoints) == 54
    assert keypoints[0:3] == [200.0, 60.0, 1.0]
    assert keypoints[9:12] == [0.0, 0.0, 0.0]  # the missing right elbow
    assert keypoints[51:54] == [235.0, 55.0, 1.0]
    assert document["people"][1]["pose_keypoints_2d"][9:12] == [110.0, 150.0, 1.0]
    assert json.loads(json.dumps(document)) == document


# ---- visibility ----------------------------------------------------------------------------


def body_and_wall_depth() -> np.ndarray:
    """100 x 160 depth: empty background, a body at 5 m in columns 20..119, a wall at 2 m in columns 120..159."""
    depth = np.full((100, 160), np.inf, dtype=np.float32)
    depth[:, 20:120] = 5.0
    depth[:, 120:] = 2.0
    return depth


def test_a_joint_on_the_surface_or_just_inside_it_is_visible():
    depth = body_and_wall_depth()
    points = [(50.5, 40.5, 5.0), (60.5, 40.5, 5.12), (0.0, 0.0, 30.0)]
    assert visible_joints(points, depth) == [(50.5, 40.5), (60.5, 40.5), (0.0, 0.0)]


def test_off_frame_joints_are_omitted():
    depth = body_and_wall_depth()
    points = [(-0.01, 10.0, 5.0), (160.0, 10.0, 5.0), (50.0, 100.0, 5.0), (50.0, -3.0, 5.0), (159.99, 99.99, 2.0)]
    assert visible_joints(points, depth) == [None, None, None, None, (159.99, 99.99)]


def test_joints_behind_the_camera_are_omitted():
    depth = body_and_wall_depth()
    assert visible_joints([(50.0, 50.0, -5.0), (50.0, 50.0, 0.0)], depth) == [None, None]


def test_joints_behind_a_nearer_wall_are_omitted():
    depth = body_and_wall_depth()
    points = [(140.5, 50.5, 5.0), (60.5, 50.5, 5.5), (121.5, 50.5, 5.0), (119.5, 50.5, 5.0)]
    visible = visible_joints(points, depth)
    assert visible[0] is None  # deep behind the 2 m wall
    assert visible[1] is None  # half a metre behind the body's surface
    assert visible[2] is None  # two pixels inside the wall: the whole 3x3 window is wall
    assert visible[3] == (119.5, 50.5)  # on the body's last column, next to the wall


def test_a_joint_on_a_silhouette_is_not_hidden_by_its_own_limb():
    depth = np.full((50, 50), np.inf, dtype=np.float32)
    depth[:, 25] = 1.0  # a one-pixel-wide limb in front of nothing
    # The joint is the limb's centre line, 4 cm behind the limb's front surface, and the pixel it
    # lands on belongs to the forearm held in front of it.
    depth[20, 24:27] = 0.5
    assert visible_joints([(25.5, 20.5, 1.04), (25.5, 30.5, 1.04)], depth) == [(25.5, 20.5), (25.5, 30.5)]


def test_tolerance_grows_with_distance_and_none_passes_through():
    depth = np.full((10, 10), 98.0, dtype=np.float32)
    # 100 m joint: tolerance 0.15 + 0.02 * 100 = 2.15 m
    assert visible_joints([(5.0, 5.0, 100.0), None], depth) == [(5.0, 5.0), None]
    assert visible_joints([(5.0, 5.0, 100.0)], depth, relative_tolerance=0.0) == [None]
    assert visible_joints([(5.0, 5.0, 100.0)], depth - 0.5) == [None]
