# SPDX-License-Identifier: GPL-3.0-or-later
"""Numeric tests of the render-pass post-processing: depth control images, raw depth, edges, masks."""

import math

import numpy as np
import pytest

from standin.addon import pass_images
from standin.addon.pass_images import (
    DepthRange,
    background_mask,
    canny_edges,
    depth_control,
    depth_range,
    depth_raw,
    object_mask,
    raw_scale_for,
)

H, W = 60, 80


def empty_depth(height=H, width=W) -> np.ndarray:
    return np.full((height, width), np.inf, dtype=np.float32)


def empty_normals(height=H, width=W) -> np.ndarray:
    return np.zeros((height, width, 3), dtype=np.float32)


def unit(*vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / np.linalg.norm(v)


# ---- depth range ---------------------------------------------------------------------------


def test_depth_range_spans_all_frames_and_ignores_no_hits():
    first = empty_depth()
    first[:, :40] = np.linspace(2.0, 4.0, 40, dtype=np.float32)
    second = empty_depth()
    second[:, 40:] = np.linspace(6.0, 10.0, 40, dtype=np.float32)
    second[0, 0] = 1.0e10  # Blender's "nothing hit"
    rng = depth_range([first, second])
    assert 2.0 <= rng.near < 2.2 and 9.8 < rng.far <= 10.0
    single = depth_range([first])
    assert single.far <= 4.0  # the second frame is what pushed far out


def test_depth_range_percentiles_ignore_stray_pixels():
    depth = np.full((100, 100), 5.0, dtype=np.float32)
    depth[:50] = 3.0
    depth[0, :5] = 1000.0  # 0.05 % of the pixels
    rng = depth_range([depth])
    assert rng.near == pytest.approx(3.0) and rng.far == pytest.approx(5.0)
    assert depth_range([depth], 0.0, 100.0).far == pytest.approx(1000.0)


def test_depth_range_of_a_shot_without_geometry_is_an_error_sentence():
    with pytest.raises(ValueError, match=r"no geometry.*\."):
        depth_range([empty_depth(), np.full((H, W), 1.0e10, dtype=np.float32)])
    with pytest.raises(ValueError):
        depth_range([])


def test_depth_range_of_a_single_depth_is_widened():
    rng = depth_range([np.full((H, W), 4.0, dtype=np.float32)])
    assert 0.0 < rng.near < 4.0 < rng.far


def test_depth_range_must_be_ordered():
    with pytest.raises(ValueError):
        DepthRange(near=5.0, far=5.0)
    with pytest.raises(ValueError):
        DepthRange(near=0.0, far=5.0)


# ---- depth control image -------------------------------------------------------------------


def test_depth_control_is_grey_rgb_nearer_brighter_background_black():
    depth = empty_depth()
    depth[10, 0:6] = [1.0, 2.0, 3.0, 5.0, 8.0, 10.0]
    depth[20, 0:2] = [0.5, 50.0]  # nearer than near, farther than far
    image = depth_control(depth, DepthRange(near=1.0, far=10.0))
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 0], image[:, :, 2])
    row = image[10, 0:6, 0].astype(int)
    assert list(row) == sorted(row, reverse=True) and len(set(row)) == 6  # strictly darker with distance
    assert row[0] == 255 and image[20, 0, 0] == 255
    assert row[-1] == 13 and image[20, 1, 0] == 13  # far plane and beyond: dark, but not black
    hits = np.isfinite(depth)
    assert not image[~hits].any()


def test_depth_control_encodes_normalised_inverse_depth():
    rng = DepthRange(near=1.0, far=10.0)
    depth = np.full((1, 1), 2.0, dtype=np.float32)
    fraction = (1 / 2.0 - 1 / 10.0) / (1 / 1.0 - 1 / 10.0)
    assert depth_control(depth, rng)[0, 0, 0] == round(255 * (0.05 + 0.95 * fraction))
    assert pass_images.DEPTH_ENCODING == "inverse_depth_near_white"


def test_same_depth_same_grey_across_frames_with_different_content():
    rng = DepthRange(near=1.5, far=20.0)
    first = empty_depth()
    first[10:20, 10:20] = 4.0
    second = empty_depth()
    second[:, :] = 19.0
    second[30:40, 50:60] = 4.0
    second[0:5, 0:5] = 1.6
    grey_first = depth_control(first, rng)[15, 15]
    grey_second = depth_control(second, rng)[35, 55]
    assert np.array_equal(grey_first, grey_second)


def test_far_geometry_never_merges_with_the_background():
    depth = empty_depth()
    depth[:, 40:] = 1.0e4
    image = depth_control(depth, DepthRange(near=1.0, far=10.0))
    assert image[:, 40:].min() > 0 and not image[:, :40].any()


# ---- raw depth -----------------------------------------------------------------------------


def test_raw_depth_round_trips_within_a_millimetre():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.05, 60.0, size=(H, W)).astype(np.float32)
    depth[0, :10] = np.inf
    raw = depth_raw(depth)
    assert raw.dtype == np.uint16 and raw.shape == (H, W)
    assert not raw[0, :10].any()
    hits = np.isfinite(depth)
    assert np.abs(raw[hits] * 0.001 - depth[hits]).max() <= 0.0005 + 1e-6


def test_raw_depth_clips_and_keeps_tiny_hits_distinct_from_no_hit():
    depth = np.array([[100.0, 0.0001, np.inf, 1.0e10, 3.2]], dtype=np.float32)
    assert depth_raw(depth).tolist() == [[65535, 1, 0, 0, 3200]]
    assert depth_raw(depth, metres_per_unit=0.01).tolist() == [[10000, 1, 0, 0, 320]]


@pytest.mark.parametrize(
    "far, scale", [(5.0, 0.001), (60.0, 0.001), (61.0, 0.002), (120.0, 0.002), (121.0, 0.005), (500.0, 0.01)]
)
def test_raw_scale_is_millimetres_unless_far_does_not_fit(far, scale):
    chosen = raw_scale_for(DepthRange(near=1.0, far=far))
    assert chosen == pytest.approx(scale)
    assert far / chosen <= 60_000 * (1 + 1e-9)


def test_raw_depth_at_the_chosen_scale_keeps_the_far_plane():
    rng = DepthRange(near=1.0, far=300.0)
    scale = raw_scale_for(rng)
    raw = depth_raw(np.array([[300.0, 2.5]], dtype=np.float32), scale)
    assert raw[0, 0] < 65535 and abs(raw[0, 0] * scale - 300.0) <= scale / 2
    assert abs(raw[0, 1] * scale - 2.5) <= scale / 2


# ---- edges ---------------------------------------------------------------------------------


def box_on_empty_background():
    """A box face-on at 5 m covering rows 20..39 and columns 30..49, nothing around it."""
    depth, normals = empty_depth(), empty_normals()
    depth[20:40, 30:50] = 5.0
    normals[20:40, 30:50] = unit(0.0, -1.0, 0.0)
    return normals, depth


def near_outline(edges, top, bottom, left, right, slack=1):
    """Boolean image: within ``slack`` pixels of the rectangle's border (rows top..bottom-1, cols left..right-1)."""
    rows, cols = np.mgrid[0 : edges.shape[0], 0 : edges.shape[1]]
    outer = (rows >= top - slack) & (rows < bottom + slack) & (cols >= left - slack) & (cols < right + slack)
    inner = (rows >= top + slack) & (rows < bottom - slack) & (cols >= left + slack) & (cols < right - slack)
    return outer & ~inner


def test_canny_draws_the_box_silhouette_and_nothing_else():
    normals, depth = box_on_empty_background()
    edges = canny_edges(normals, depth)
    assert edges.shape == (H, W) and edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}
    outline = near_outline(edges, 20, 40, 30, 50)
    assert not edges[~outline].any()
    assert edges[25:35, 29:32].any(axis=1).all()  # left side, every row
    assert edges[25:35, 48:51].any(axis=1).all()  # right side
    assert edges[19:22, 35:45].any(axis=0).all()  # top
    assert edges[38:41, 35:45].any(axis=0).all()  # bottom


def test_canny_lines_are_one_pixel_thin():
    normals, depth = box_on_empty_background()
    edges = canny_edges(normals, depth) > 0
    assert (edges[25:35, 26:40].sum(axis=1) == 1).all()
    assert (edges[15:30, 35:45].sum(axis=0) == 1).all()


def test_canny_finds_a_crease_between_two_normal_regions():
    # A roof ridge seen from above: continuous depth, the normal turns by 90 degrees at column 40.
    depth = np.tile(5.0 + 0.01 * np.abs(np.arange(W, dtype=np.float32) - 40), (H, 1))
    normals = empty_normals()
    normals[:, :40] = unit(-1.0, 0.0, 1.0)
    normals[:, 40:] = unit(1.0, 0.0, 1.0)
    edges = canny_edges(normals, depth)
    columns = np.nonzero(edges.any(axis=0))[0]
    assert set(columns) <= {39, 40}
    assert edges[:, 38:42].any(axis=1).all()  # the whole ridge, top to bottom


def test_canny_finds_a_depth_step_between_parallel_surfaces():
    # A flat to the camera 1 m in front of a wall with the same normal: only depth tells them apart.
    depth = np.full((H, W), 6.0, dtype=np.float32)
    depth[15:45, 20:60] = 5.0
    normals = np.tile(unit(0.0, -1.0, 0.0), (H, W, 1))
    edges = canny_edges(normals, depth)
    assert edges.any()
    assert not edges[~near_outline(edges, 15, 45, 20, 60)].any()


def test_no_edges_inside_a_flat_face_even_at_a_grazing_angle():
    # A floor filling the frame, seen by a level camera 1.7 m up with 0.4 degrees per pixel: its
    # planar depth 1.7 / tan(angle below the horizon) grows from 3.7 m to 24 m towards the top.
    rows = np.arange(H, dtype=np.float64)[:, np.newaxis]
    tangents = np.tan(np.radians(4.0)) + (np.tan(np.radians(28.0)) - np.tan(np.radians(4.0))) * rows / (H - 1)
    depth = np.tile(1.7 / tangents, (1, W)).astype(np.float32)
    normals = np.tile(unit(0.0, 0.0, 1.0), (H, W, 1))
    assert not canny_edges(normals, depth).any()
    flat = np.full((H, W), 3.0, dtype=np.float32)
    assert not canny_edges(normals, flat).any()


def test_canny_thresholds_change_the_result():
    # A shallow 10-degree crease: weak at the default thresholds, an edge at lower ones.
    depth = np.full((H, W), 5.0, dtype=np.float32)
    normals = np.tile(unit(0.0, 0.0, 1.0), (H, W, 1))
    normals[:, 40:] = unit(math.sin(math.radians(10)), 0.0, math.cos(math.radians(10)))
    assert not canny_edges(normals, depth).any()
    low_edges = canny_edges(normals, depth, low=20, high=60)
    assert low_edges[:, 38:42].any(axis=1).all()


def test_canny_drops_specks():
    normals, depth = empty_normals(), empty_depth()
    depth[30, 30] = 5.0  # a single-pixel hit
    normals[30, 30] = unit(0.0, -1.0, 0.0)
    assert canny_edges(normals, depth, min_edge_pixels=1).any()
    assert not canny_edges(normals, depth, min_edge_pixels=100).any()


def test_canny_accepts_four_channel_normals_and_no_geometry():
    normals, depth = box_on_empty_background()
    rgba = np.concatenate([normals, np.ones((H, W, 1), dtype=np.float32)], axis=2)
    assert np.array_equal(canny_edges(rgba, depth), canny_edges(normals, depth))
    assert not canny_edges(empty_normals(), empty_depth()).any()


# ---- masks ---------------------------------------------------------------------------------


def index_pass():
    index = np.zeros((H, W), dtype=np.float32)
    index[10:30, 10:20] = 1.0  # character 1
    index[35:55, 50:70] = 2.0  # character 2
    index[0:5, :] = 7.0  # a set piece
    return index


def test_object_mask_is_the_index_region():
    index = index_pass()
    mask = object_mask(index, 2)
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    expected = np.zeros((H, W), dtype=np.uint8)
    expected[35:55, 50:70] = 255
    assert np.array_equal(mask, expected)
    assert np.array_equal(object_mask(index[:, :, np.newaxis], 2), expected)  # (H, W, 1) buffers too
    assert not object_mask(index, 3).any()


def test_background_mask_is_white_where_no_character_is():
    index = index_pass()
    mask = background_mask(index, [1, 2])
    expected = np.full((H, W), 255, dtype=np.uint8)
    expected[10:30, 10:20] = 0
    expected[35:55, 50:70] = 0
    assert np.array_equal(mask, expected)
    assert background_mask(index, []).min() == 255
    assert np.array_equal(background_mask(index, [2]), 255 - object_mask(index, 2))
