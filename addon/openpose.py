# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPose COCO-18 skeleton images and JSON for the pose ControlNets. Pure Python (NumPy + OpenCV).

The drawing reproduces controlnet_aux 0.0.10's ``draw_bodypose`` pixel for pixel (see
``shared/notes/openpose-coco18.md``): per person, every limb as a filled ellipse in its colour
x 0.6 in the fixed limb order (later limbs paint over earlier ones), then every joint as a
filled circle of radius 4 in the joint's colour.

Conventions: images are (H, W, 3) uint8 RGB with row 0 at the top. Joint positions are pixel
coordinates, x to the right and y down, pixel centres at +0.5; a point at Blender's normalised
camera coordinates (u, v) (``world_to_camera_view``, (0, 0) bottom-left) lands at
``x = u * W, y = (1 - v) * H``. A joint is ``None`` when it is missing (off-frame or hidden).

Keypoint order (the subject's own left/right): 0 nose, 1 neck, 2 right shoulder, 3 right elbow,
4 right wrist, 5 left shoulder, 6 left elbow, 7 left wrist, 8 right hip, 9 right knee,
10 right ankle, 11 left hip, 12 left knee, 13 left ankle, 14 right eye, 15 left eye,
16 right ear, 17 left ear.
"""

import math
from typing import Optional, Sequence

import cv2
import numpy as np

PixelPoint = tuple[float, float]
#: A joint projected through the camera: (x pixels, y pixels, planar view depth in metres).
ProjectedPoint = tuple[float, float, float]
Person = Sequence[Optional[PixelPoint]]

JOINT_COUNT = 18

#: The 17 limbs as 1-based joint pairs, in controlnet_aux's drawing order.
COCO18_LIMBS: tuple[tuple[int, int], ...] = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11),
    (2, 12), (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18),
)

#: RGB colour of joint i, and of limb i (limbs use it x 0.6).
COCO18_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

#: Half-width of a limb ellipse in pixels (controlnet_aux's ``stickwidth``).
STICK_WIDTH = 4
#: Radius of a joint's filled circle in pixels.
JOINT_RADIUS = 4
#: Limbs are drawn in their colour times this factor.
LIMB_COLOR_FACTOR = 0.6

OPENPOSE_JSON_VERSION = 1.3


def limb_color(limb_number: int) -> list[int]:
    """The fill colour of limb ``limb_number`` (0-based), as controlnet_aux rounds it."""
    return [int(float(channel) * LIMB_COLOR_FACTOR) for channel in COCO18_COLORS[limb_number]]


def _check_person(person: Person) -> None:
    if len(person) != JOINT_COUNT:
        raise ValueError(f"A COCO-18 person has {JOINT_COUNT} joints, this one has {len(person)}.")


def _draw_limb(canvas: np.ndarray, joint_a: PixelPoint, joint_b: PixelPoint, color: list[int]) -> None:
    """One limb as controlnet_aux draws it: an ellipse from ``joint_a`` to ``joint_b``."""
    (x_a, y_a), (x_b, y_b) = joint_a, joint_b
    centre_x = (x_a + x_b) / 2
    centre_y = (y_a + y_b) / 2
    delta_x = x_a - x_b
    delta_y = y_a - y_b
    length = (delta_y**2 + delta_x**2) ** 0.5
    angle_degrees = math.degrees(math.atan2(delta_y, delta_x))
    polygon = cv2.ellipse2Poly(
        (int(centre_x), int(centre_y)), (int(length / 2), STICK_WIDTH), int(angle_degrees), 0, 360, 1
    )
    cv2.fillConvexPoly(canvas, polygon, color)


def _draw_person(canvas: np.ndarray, person: Person) -> None:
    for limb_number, (joint_a, joint_b) in enumerate(COCO18_LIMBS):
        point_a, point_b = person[joint_a - 1], person[joint_b - 1]
        if point_a is None or point_b is None:
            continue
        _draw_limb(canvas, point_a, point_b, limb_color(limb_number))
    for joint_number, point in enumerate(person):
        if point is None:
            continue
        x, y = point
        cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, COCO18_COLORS[joint_number], thickness=-1)


def draw_pose(
    height: int, width: int, people: Sequence[Person], canvas: Optional[np.ndarray] = None
) -> np.ndarray:
    """The OpenPose skeleton image of ``people``: (height, width, 3) uint8 RGB on black.

    Each person is 18 joints in COCO order, each a pixel point (x, y) or ``None``. People are
    drawn in list order, each with its limbs then its joints. When ``canvas`` is given (an
    (height, width, 3) uint8 image) the skeletons are drawn onto it in place and it is returned.
    """
    if canvas is None:
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
    elif canvas.shape != (height, width, 3) or canvas.dtype != np.uint8:
        raise ValueError(
            f"The canvas must be a ({height}, {width}, 3) uint8 image, not {canvas.shape} {canvas.dtype}."
        )
    for person in people:
        _check_person(person)
        _draw_person(canvas, person)
    return canvas


def pose_json(people: Sequence[Person], width: int, height: int) -> dict:
    """The OpenPose JSON of ``people``: pixel coordinates, confidence 1 per joint, 0 (at 0, 0) if missing."""
    records = []
    for person in people:
        _check_person(person)
        keypoints: list[float] = []
        for point in person:
            keypoints.extend((0.0, 0.0, 0.0) if point is None else (float(point[0]), float(point[1]), 1.0))
        records.append({"pose_keypoints_2d": keypoints})
    return {
        "version": OPENPOSE_JSON_VERSION,
        "people": records,
        "canvas_width": int(width),
        "canvas_height": int(height),
    }


def _farthest_depth_around(depth: np.ndarray, column: int, row: int, radius: int = 1) -> float:
    """The largest rendered depth in the (2 radius + 1)² window around a pixel, clipped to the image."""
    height, width = depth.shape
    rows = slice(max(row - radius, 0), min(row + radius + 1, height))
    columns = slice(max(column - radius, 0), min(column + radius + 1, width))
    window = depth[rows, columns]
    finite_or_inf = np.where(np.isnan(window), np.inf, window)
    return float(finite_or_inf.max())


def visible_joints(
    points: Sequence[Optional[ProjectedPoint]],
    depth: np.ndarray,
    tolerance: float = 0.15,
    relative_tolerance: float = 0.02,
) -> list[Optional[PixelPoint]]:
    """The joints the camera sees: (x, y) per joint, ``None`` for off-frame, behind or hidden ones.

    ``points`` holds each joint projected through the camera as (x pixels, y pixels, planar view
    depth in metres), or ``None``. ``depth`` is the rendered planar depth (H, W) in metres, +inf
    where nothing was hit. A joint is hidden when something is nearer than it by more than
    ``tolerance + relative_tolerance * z`` at every pixel of the 3x3 window around it (the
    window's farthest depth is used, so a joint on a thin limb's silhouette stays visible, and a
    joint inside its own limb, a few centimetres behind the surface, is within the tolerance).
    """
    height, width = depth.shape
    visible: list[Optional[PixelPoint]] = []
    for point in points:
        if point is None:
            visible.append(None)
            continue
        x, y, z = (float(value) for value in point)
        inside_frame = 0.0 <= x < width and 0.0 <= y < height
        if not inside_frame or not z > 0.0:
            visible.append(None)
            continue
        surface_depth = _farthest_depth_around(depth, int(x), int(y))
        occluded = z > surface_depth + tolerance + relative_tolerance * z
        visible.append(None if occluded else (x, y))
    return visible
