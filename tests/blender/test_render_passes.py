# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth, Normal and Object Index from real Cycles renders, on Blender 5.0 and 4.5.

The scenes are small (a few primitives, 96×64 pixels) so each render takes a few hundredths of a
second. A camera at ``(0, -distance, 0)`` with rotation ``(90°, 0, 0)`` looks along +Y with +Z up
in the image and +X to the right.
"""

import math
import pathlib

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from standin.addon.render_passes import FrameBuffers, PassRenderer

pytestmark = pytest.mark.bpy45

WIDTH, HEIGHT = 96, 64


def _camera(scene, name="Shot Cam", location=(0.0, -10.0, 0.0), lens=50.0):
    """A camera looking along +Y from ``location``."""
    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(camera)
    camera.location = location
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    camera.data.lens = lens
    camera.data.sensor_fit = "HORIZONTAL"
    return camera


def _cube(location, size=1.0, pass_index=0, name="Cube"):
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    cube = bpy.context.object
    cube.name = name
    cube.pass_index = pass_index
    return cube


def _wall(distance, size=200.0):
    """A plane across the view at ``y = distance``, facing the camera (its normal is -Y)."""
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0.0, distance, 0.0), rotation=(math.pi / 2, 0.0, 0.0))
    return bpy.context.object


def _render(scene, camera, tmp_path, frame=1, hidden=(), width=WIDTH, height=HEIGHT) -> FrameBuffers:
    with PassRenderer(scene, camera, width, height, tmp_path) as renderer:
        return renderer.render_frame(frame, hidden=hidden)


def _region(buffers: FrameBuffers, index: int):
    rows, cols = np.nonzero(buffers.object_index == index)
    assert rows.size, f"nothing with object index {index} in the render"
    return rows, cols


def test_buffers_have_the_documented_shapes_and_types_for_a_non_square_size(scene, tmp_path):
    camera = _camera(scene)
    _cube((0.0, 0.0, 0.0))
    buffers = _render(scene, camera, tmp_path, width=120, height=48)
    assert buffers.depth.shape == (48, 120) and buffers.depth.dtype == np.float32
    assert buffers.normal.shape == (48, 120, 3) and buffers.normal.dtype == np.float32
    assert buffers.object_index.shape == (48, 120) and buffers.object_index.dtype == np.int32
    assert list(tmp_path.iterdir()) == [], "the pass files are deleted once read"


def test_a_nearer_cube_reads_smaller_depth_than_a_farther_one(scene, tmp_path):
    camera = _camera(scene, location=(0.0, -10.0, 0.0))
    near = _cube((-1.5, -4.0, 0.0), pass_index=1, name="Near")
    _cube((1.5, 4.0, 0.0), pass_index=2, name="Far")
    buffers = _render(scene, camera, tmp_path)

    near_depth = buffers.depth[_region(buffers, 1)]
    far_depth = buffers.depth[_region(buffers, 2)]
    assert near_depth.max() < far_depth.min()
    # The near cube's front face is 5.5 m in front of the camera, as Blender's own projection says.
    front_face = Vector((-1.5, -4.5, 0.0))
    bpy.context.view_layer.update()
    assert np.median(near_depth) == pytest.approx(world_to_camera_view(scene, camera, front_face).z, abs=1e-3)
    assert np.median(near_depth) == pytest.approx(5.5, abs=1e-3)
    assert np.all(np.isinf(buffers.depth[buffers.object_index == 0])), "nothing hit reads inf"
    assert not buffers.hit[0, 0] and buffers.hit[_region(buffers, 1)].all()


def test_depth_is_planar_a_wall_facing_the_camera_reads_the_same_depth_at_centre_and_corners(scene, tmp_path):
    # A wide lens, so a ray's length to the corners would be about 1.56 times the wall's distance.
    camera = _camera(scene, location=(0.0, -7.0, 0.0), lens=18.0)
    _wall(distance=0.0)
    buffers = _render(scene, camera, tmp_path)

    centre = buffers.depth[HEIGHT // 2, WIDTH // 2]
    corners = [buffers.depth[0, 0], buffers.depth[0, -1], buffers.depth[-1, 0], buffers.depth[-1, -1]]
    assert centre == pytest.approx(7.0, abs=1e-3)
    assert corners == pytest.approx([7.0] * 4, abs=1e-3)
    assert np.allclose(buffers.depth, 7.0, atol=1e-3)


def test_object_index_is_exact_and_row_zero_is_the_top_of_the_image(scene, tmp_path):
    camera = _camera(scene)
    _cube((2.0, 0.0, 1.2), pass_index=3)  # right of and above the centre of the frame
    buffers = _render(scene, camera, tmp_path)

    assert set(np.unique(buffers.object_index)) == {0, 3}
    rows, cols = _region(buffers, 3)
    assert rows.max() < HEIGHT // 2, "the cube is above the centre, so in the top rows"
    assert cols.min() > WIDTH // 2, "the cube is right of the centre, so in the right columns"
    assert buffers.object_index[0, 0] == 0 and buffers.object_index[-1, -1] == 0
    # The region is where Blender projects the cube's middle.
    bpy.context.view_layer.update()
    x, y, _ = world_to_camera_view(scene, camera, Vector((2.0, -0.5, 1.2)))
    assert buffers.object_index[int((1.0 - y) * HEIGHT), int(x * WIDTH)] == 3


def test_normals_are_in_world_space_and_a_wall_facing_the_camera_points_back_at_it(scene, tmp_path):
    camera = _camera(scene, location=(0.0, -6.0, 0.0))
    _wall(distance=0.0, size=4.0)  # smaller than the view, so the corners miss
    buffers = _render(scene, camera, tmp_path)

    towards_camera = np.array([0.0, -1.0, 0.0])  # in camera space it would be (0, 0, 1)
    assert buffers.normal[HEIGHT // 2, WIDTH // 2] == pytest.approx(towards_camera, abs=1e-4)
    hit = buffers.hit
    assert hit.any() and not hit.all()
    assert np.allclose(buffers.normal[hit], towards_camera, atol=1e-4)
    assert np.all(buffers.normal[~hit] == 0.0)


def test_hidden_objects_vanish_from_that_render_only(scene, tmp_path):
    camera = _camera(scene)
    prop = _cube((-1.5, 0.0, 0.0), pass_index=4, name="Prop")
    actor = _cube((1.5, 0.0, 0.0), pass_index=5, name="Actor")
    already_hidden = _cube((0.0, 0.0, 1.5), pass_index=6, name="Already hidden")
    already_hidden.hide_render = True

    with PassRenderer(scene, camera, WIDTH, HEIGHT, tmp_path) as renderer:
        without_prop = renderer.render_frame(1, hidden=[prop, already_hidden])
        assert prop.hide_render is False and already_hidden.hide_render is True
        again = renderer.render_frame(2)

    assert set(np.unique(without_prop.object_index)) == {0, 5}
    assert set(np.unique(again.object_index)) == {0, 4, 5}
    assert prop.hide_render is False and actor.hide_render is False and already_hidden.hide_render is True


def _settings(scene) -> dict:
    """The settings a pass render touches, as plain values."""
    render, cycles, layer = scene.render, scene.cycles, scene.view_layers[0]
    settings = {name: getattr(render, name) for name in (
        "engine", "resolution_x", "resolution_y", "resolution_percentage", "filepath", "use_file_extension",
        "use_border", "use_motion_blur", "use_sequencer", "use_persistent_data", "use_compositing")}
    settings.update({f"image.{name}": getattr(render.image_settings, name)
                     for name in ("file_format", "color_depth", "color_mode")})
    settings.update({f"cycles.{name}": getattr(cycles, name) for name in (
        "device", "samples", "use_denoising", "use_adaptive_sampling", "max_bounces", "filter_width")})
    settings.update({f"layer.{name}": getattr(layer, name)
                     for name in ("use", "use_pass_z", "use_pass_normal", "use_pass_object_index")})
    settings.update(camera=scene.camera, frame=scene.frame_current, node_groups=sorted(bpy.data.node_groups.keys()),
                    markers=[(marker.name, marker.camera) for marker in scene.timeline_markers])
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0
        settings["compositing_node_group"] = scene.compositing_node_group
    else:
        settings.update(use_nodes=scene.use_nodes, node_tree=scene.node_tree)
    return settings


def _users_scene_setup(scene):
    """Settings unlike the renderer's, as a user's scene might have them."""
    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1920, 1080, 50
    render.filepath = "//renders/shot_"
    render.image_settings.file_format = "PNG"
    render.image_settings.color_depth = "16"
    render.use_compositing = True
    scene.cycles.samples = 64
    scene.frame_set(5)
    if hasattr(scene, "compositing_node_group"):
        scene.compositing_node_group = bpy.data.node_groups.new("User Compositing", "CompositorNodeTree")
    else:
        scene.use_nodes = True


def test_leaving_restores_every_setting_it_changed(scene, tmp_path):
    _users_scene_setup(scene)
    users_camera = _camera(scene, name="User Cam", location=(0.0, -20.0, 0.0))
    scene.camera = users_camera
    shot_camera = _camera(scene)
    _cube((0.0, 0.0, 0.0), pass_index=1)
    before = _settings(scene)

    with PassRenderer(scene, shot_camera, WIDTH, HEIGHT, tmp_path) as renderer:
        during = _settings(scene)
        renderer.render_frame(3)

    assert during["engine"] == "CYCLES" and during["camera"] == shot_camera
    assert during["layer.use_pass_z"] and during["cycles.samples"] == 1
    assert _settings(scene) == before


def test_settings_are_restored_when_the_render_writes_nothing(scene, tmp_path):
    camera = _camera(scene)
    _cube((0.0, 0.0, 0.0))
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    before = _settings(scene)

    with pytest.raises(RuntimeError, match="wrote no files .* can be written to"):
        _render(scene, camera, blocker / "passes")
    assert _settings(scene) == before


def test_a_camera_bound_to_a_timeline_marker_does_not_take_over_the_render(scene, tmp_path):
    far_camera = _camera(scene, name="Marker Cam", location=(0.0, -30.0, 0.0))
    marker = scene.timeline_markers.new("Shot 1", frame=1)
    marker.camera = far_camera
    shot_camera = _camera(scene, location=(0.0, -8.0, 0.0))
    _wall(distance=0.0)

    buffers = _render(scene, shot_camera, tmp_path, frame=4)

    assert buffers.depth[HEIGHT // 2, WIDTH // 2] == pytest.approx(8.0, abs=1e-3)
    assert marker.camera == far_camera


def test_each_frame_is_rendered_exactly_once(scene, tmp_path):
    camera = _camera(scene)
    _cube((0.0, 0.0, 0.0), pass_index=2)
    renders = []

    def count(*_args):
        renders.append(bpy.context.scene.frame_current)

    bpy.app.handlers.render_post.append(count)
    try:
        with PassRenderer(scene, camera, WIDTH, HEIGHT, tmp_path) as renderer:
            for frame in (1, 2, 7):
                renderer.render_frame(frame)
    finally:
        bpy.app.handlers.render_post.remove(count)
    assert renders == [1, 2, 7]


def test_render_frame_needs_the_with_block(scene, tmp_path):
    renderer = PassRenderer(scene, _camera(scene), WIDTH, HEIGHT, tmp_path)
    with pytest.raises(RuntimeError, match="inside a `with PassRenderer"):
        renderer.render_frame(1)


def test_a_non_camera_or_an_empty_size_is_refused(scene, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(ValueError, match="not a camera"):
        PassRenderer(scene, bpy.context.object, WIDTH, HEIGHT, tmp_path)
    with pytest.raises(ValueError, match="at least 1×1"):
        PassRenderer(scene, _camera(scene), 0, HEIGHT, pathlib.Path(tmp_path))
