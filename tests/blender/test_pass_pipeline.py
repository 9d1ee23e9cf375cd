"""Per-shot control passes on real (small) Cycles renders: the package, its pixels, and bad input."""

import json
import os
import pathlib

import bpy
import cv2
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from standin.addon import blocking, mannequin, openpose, pass_pipeline, rig, shot_package, shots
from standin.addon.render_passes import PassRenderer
from standin.operators.characters import add_character


def _png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def _small_scene(scene, frames=4):
    """Ada standing 4 m in front of a back wall, a box beside her, one full shot on her."""
    data = scene.standin
    data.project.aspect = "16:9"
    data.project.resolution = 256
    blocking.ensure_set(scene, "Yard", prompt="yard", seed=3)
    blocking.add_piece(scene, "wall", name="Back wall", location=(0, 2.0, 0), length=8.0)
    box = blocking.add_piece(scene, "box", name="Crate", location=(1.2, 0.3, 0))
    box.pass_index = 7
    ada = add_character(scene, "Ada", "a woman in a green coat", height=1.7, location=(0, 0, 0), facing_deg=0)
    shot = shots.add_shot(scene, duration=frames)
    shot.shot_size, shot.lens = "FS", 35.0
    shot.subjects.add().name = "Ada"
    shots.frame_shot(scene, shot)
    return shot, ada


def _run(scene, shot, out, **kwargs):
    return pass_pipeline.PassJob(scene, [shot.name], out_root=out, **kwargs).run()[0]


@pytest.fixture
def small(scene, tmp_path):
    shot, ada = _small_scene(scene)
    return scene, shot, ada, tmp_path / "out"


@pytest.mark.bpy45
def test_one_render_per_frame_and_a_complete_package(small):
    scene, shot, ada, out = small
    renders = []
    handler = lambda *args: renders.append(1)  # noqa: E731
    bpy.app.handlers.render_post.append(handler)
    try:
        result = _run(scene, shot, out)
    finally:
        bpy.app.handlers.render_post.remove(handler)
    assert result.status == "rendered", result.message
    frames = range(shot.frame_start, shot.frame_end + 1)
    # One render per frame, plus one background render: the camera does not move.
    assert len(renders) == len(frames) + 1 == result.renders
    package = out / shot.name
    data = json.loads((package / "shot.json").read_text())
    assert data["complete"] is True and data["shot"] == shot.name
    assert [c["name"] for c in data["characters"]] == ["Ada"]
    assert data["characters"][0]["prompt"] == "a woman in a green coat"
    assert data["set"]["name"] == "Yard" and data["set"]["seed"] == 3
    assert set(data["camera_matrices"]) == {str(f) for f in frames}
    assert data["width"] == 256 and data["height"] == 144
    assert len(data["content_hash"]) == 64
    for folder in ("depth", "depth_raw", "canny", "openpose", "depth_bg", "canny_bg", "mask/Ada"):
        assert sorted(p.name for p in (package / folder).iterdir()) == [f"{f:04d}.png" for f in frames]
    assert sorted(p.name for p in (package / "pose").iterdir()) == [f"{f:04d}.json" for f in frames]
    assert not list(out.glob(".staging-*"))
    assert _png(package / "depth_raw" / f"{shot.frame_start:04d}.png").dtype == np.uint16


@pytest.mark.bpy45
def test_depth_is_near_white_and_the_raw_depth_is_metric(small):
    scene, shot, ada, out = small
    _run(scene, shot, out)
    package = out / shot.name
    frame = f"{shot.frame_start:04d}.png"
    depth = _png(package / "depth" / frame)[..., 0]
    raw = _png(package / "depth_raw" / frame)
    mask = _png(package / "mask" / "Ada" / frame) > 0
    data = json.loads((package / "shot.json").read_text())
    wall = (raw > 0) & ~mask & (depth > 0)
    assert depth[mask].mean() > depth[wall].mean()  # Ada is nearer than the wall: brighter
    metres = raw[mask].astype(float) * data["depth"]["raw_metres_per_unit"]
    scene.frame_set(shot.frame_start)
    chest = Vector(rig.joint_positions(ada.stand_in)["neck"])
    expected = world_to_camera_view(scene, shot.camera, chest).z
    assert abs(np.median(metres) - expected) < 0.3


@pytest.mark.bpy45
def test_same_surface_same_distance_same_depth_in_a_moving_shot(scene, tmp_path):
    shot, ada = _small_scene(scene, frames=6)
    shot.move, shot.move_amount = "TRUCK", 0.6  # sideways: the wall stays at the same distance
    shots.frame_shot(scene, shot)
    result = _run(scene, shot, tmp_path)
    assert result.status == "rendered" and result.renders == 2 * 6  # background per frame when moving
    package = tmp_path / shot.name
    # A truck moves along the camera's own X axis, so a world point keeps its distance along the
    # view axis: the same point of the wall or the crate must read the same value.
    candidates = [Vector((x / 4, 2.0 - 0.076, z)) for x in range(-14, 15) for z in (1.2, 2.0)]
    candidates += [Vector((x, 0.3 - 0.51, z)) for x in (1.0, 1.2, 1.4) for z in (0.3, 0.6)]  # the crate's front
    scene.frame_set(shot.frame_start)

    def inside(point):
        return all(0.05 < c < 0.95 for c in world_to_camera_view(scene, shot.camera, point)[:2])

    points = [p for p in candidates if inside(p)]
    scene.frame_set(shot.frame_end)
    points = [p for p in points if inside(p)]
    assert len(points) >= 6
    scale = json.loads((package / "shot.json").read_text())["depth"]["raw_metres_per_unit"]
    samples = {}
    for frame in (shot.frame_start, shot.frame_end):
        scene.frame_set(frame)
        depth = _png(package / "depth" / f"{frame:04d}.png")[..., 0]
        raw = _png(package / "depth_raw" / f"{frame:04d}.png")
        values = []
        for point in points:
            u, v, z = world_to_camera_view(scene, shot.camera, point)
            row, column = int((1 - v) * depth.shape[0]), int(u * depth.shape[1])
            seen = abs(raw[row, column] * scale - z) < 0.05  # not hidden behind Ada or the crate
            values.append(int(depth[row, column]) if seen else None)
        samples[frame] = values
    both = [(a, b) for a, b in zip(samples[shot.frame_start], samples[shot.frame_end]) if a is not None and b is not None]
    assert len(both) >= 6
    first, last = [a for a, _b in both], [b for _a, b in both]
    assert all(value > 0 for value in first + last), (first, last)
    assert max(abs(a - b) for a, b in zip(first, last)) <= 2, (first, last)
    assert len(set(first)) > 2  # the points really are at different depths


@pytest.mark.bpy45
def test_every_drawn_joint_is_where_blender_projects_it_in_the_spec_colour(small):
    scene, shot, ada, out = small
    _run(scene, shot, out)
    package = out / shot.name
    frame = shot.frame_start
    pose = json.loads((package / "pose" / f"{frame:04d}.json").read_text())
    image = _png(package / "openpose" / f"{frame:04d}.png")
    width, height = pose["canvas_width"], pose["canvas_height"]
    assert pose["people"][0]["standin_character"] == "Ada"
    keypoints = pose["people"][0]["pose_keypoints_2d"]
    scene.frame_set(frame)
    joints = rig.joint_positions(ada.stand_in)
    present = [(i, keypoints[3 * i], keypoints[3 * i + 1]) for i in range(18) if keypoints[3 * i + 2] > 0]
    assert len(present) >= 14  # a full shot of a standing person shows nearly every joint
    checked = 0
    for index, x, y in present:
        name = mannequin.COCO18[index]
        u, v, _z = world_to_camera_view(scene, shot.camera, Vector(joints[name]))
        assert x == pytest.approx(u * width, abs=0.6) and y == pytest.approx((1 - v) * height, abs=0.6), name
        # Joints are drawn in COCO order: a later joint's circle close by may cover this one.
        covered = any(k > index and abs(kx - x) < 9 and abs(ky - y) < 9 for k, kx, ky in present)
        if not covered:
            assert tuple(image[int(y), int(x)]) == tuple(openpose.COCO18_COLORS[index]), name
            checked += 1
    assert checked >= 10


@pytest.mark.bpy45
def test_a_joint_behind_a_wall_is_omitted_and_a_mask_is_cut_by_what_is_in_front(small):
    scene, shot, ada, out = small
    low_wall = blocking.add_piece(scene, "box", name="Low wall", location=(0, -0.6, 0), width=3.0, depth=0.2,
                                  height=0.9)
    _run(scene, shot, out)
    package = out / shot.name
    frame = shot.frame_start
    keypoints = json.loads((package / "pose" / f"{frame:04d}.json").read_text())["people"][0]["pose_keypoints_2d"]
    confidence = {name: keypoints[3 * i + 2] for i, name in enumerate(mannequin.COCO18)}
    assert confidence["r_ankle"] == 0 and confidence["l_ankle"] == 0 and confidence["r_knee"] == 0
    assert confidence["nose"] == 1 and confidence["neck"] == 1
    cut = _png(package / "mask" / "Ada" / f"{frame:04d}.png") > 0
    # The mask equals the object-index region of Ada's body in the same render.
    with PassRenderer(scene, shot.camera, 256, 144, out / "check") as renderer:
        whole = renderer.render_frame(frame, hidden=[low_wall]).object_index == 1
        same = renderer.render_frame(frame).object_index == 1
    assert np.array_equal(cut, same)
    assert cut.sum() < whole.sum() * 0.85  # the low wall hides her legs


@pytest.mark.bpy45
def test_edges_lie_on_the_silhouettes_of_set_pieces(small):
    scene, shot, ada, out = small
    _run(scene, shot, out)
    package = out / shot.name
    frame = shot.frame_start
    edges = _png(package / "canny" / f"{frame:04d}.png") > 0
    with PassRenderer(scene, shot.camera, 256, 144, out / "check") as renderer:
        crate = renderer.render_frame(frame).object_index == 7
    assert crate.any()
    outline = cv2.morphologyEx(crate.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    near_outline = cv2.dilate(outline.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    crate_edges = edges & cv2.dilate(crate.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert crate_edges.sum() > 0
    assert (crate_edges & near_outline).sum() / crate_edges.sum() > 0.8  # edges sit on the silhouette…
    found = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (outline & found).sum() / outline.sum() > 0.7  # …and most of the silhouette has an edge


@pytest.mark.bpy45
def test_unchanged_shots_are_not_rendered_again(small):
    scene, shot, ada, out = small
    assert _run(scene, shot, out).status == "rendered"
    stamp = (out / shot.name / "shot.json").stat().st_mtime_ns
    assert _run(scene, shot, out).status == "skipped"
    assert (out / shot.name / "shot.json").stat().st_mtime_ns == stamp
    scene.standin.project.style_prompt = "ink and wash"
    result = _run(scene, shot, out)
    assert result.status == "metadata" and result.renders == 0
    assert json.loads((out / shot.name / "shot.json").read_text())["style_prompt"] == "ink and wash"
    ada.stand_in.location.x += 0.3
    assert _run(scene, shot, out).status == "rendered"


@pytest.mark.bpy45
def test_an_interrupted_run_leaves_no_package_that_looks_complete(small):
    scene, shot, ada, out = small
    job = pass_pipeline.PassJob(scene, [shot.name], out_root=out)
    engine = scene.render.engine
    assert job.tick() and job.tick()  # two renders in
    job.cancel()
    assert job.results[-1].status == "cancelled"
    assert not (out / shot.name).exists()
    assert not list(out.glob(".staging-*"))
    assert scene.render.engine == engine  # the scene is restored
    # An earlier complete package survives an interrupted re-render untouched.
    assert _run(scene, shot, out).status == "rendered"
    before = (out / shot.name / "shot.json").read_bytes()
    job = pass_pipeline.PassJob(scene, [shot.name], out_root=out, force=True)
    job.tick()
    job.cancel()
    assert (out / shot.name / "shot.json").read_bytes() == before


@pytest.mark.bpy45
def test_bad_shots_get_a_clear_message_and_the_others_still_render(small):
    scene, shot, ada, out = small
    no_camera = shots.add_shot(scene, duration=2)
    bpy.data.objects.remove(no_camera.camera)
    empty_view = shots.add_shot(scene, duration=2)
    empty_view.camera.location = (3.0, -1.0, 1.5)
    empty_view.camera.rotation_euler = (1.5708, 0, 0)  # looking at the far right of the wall, Ada out of view
    empty_view.camera.data.lens = 85.0
    names = [no_camera.name, shot.name, empty_view.name]
    results = {r.shot: r for r in pass_pipeline.PassJob(scene, names, out_root=out).run()}
    assert results[no_camera.name].status == "failed"
    assert "camera was deleted" in results[no_camera.name].message
    assert results[shot.name].status == "rendered"
    assert results[empty_view.name].status == "rendered"
    assert any("sees no character" in w for w in results[empty_view.name].warnings)


@pytest.mark.bpy45
def test_deleted_stand_in_and_resolution_limit_and_read_only_folder(small):
    scene, shot, ada, out = small
    scene.cursor.location = (-1.0, 0, 0)
    ghost = add_character(scene, "Ghost")
    rig.remove_stand_in(ghost.stand_in)
    result = _run(scene, shot, out)
    assert result.status == "rendered"
    assert any("Ghost has no stand-in" in w for w in result.warnings)

    result = _run(scene, shot, out, scale=20.0)
    assert result.status == "failed" and "out of range" in result.message
    scene.standin.project.resolution = 4096
    result = _run(scene, shot, out, scale=1.0)
    assert result.status == "failed" and "2048 px limit" in result.message and "--scale" in result.message
    scene.standin.project.resolution = 256

    # An output folder that cannot be written (a file stands where the folder should be; root
    # ignores read-only permissions, so this is the case that fails for every user).
    blocker = out.parent / "blocker"
    blocker.write_text("")
    result = _run(scene, shot, blocker / "passes")
    assert result.status == "failed" and "Cannot write" in result.message
    if os.geteuid() != 0:
        locked = out.parent / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            result = _run(scene, shot, locked)
            assert result.status == "failed" and "Cannot write" in result.message
        finally:
            locked.chmod(0o700)


@pytest.mark.bpy45
def test_shot_json_carries_the_sun_in_camera_space_and_the_time_of_day(small):
    scene, shot, ada, out = small
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (0.6, 0.2, 1.0)
    scene.standin.sets["Yard"].time_of_day = "GOLDEN_HOUR"
    _run(scene, shot, out)
    data = json.loads((out / shot.name / "shot.json").read_text())
    scene.frame_set(shot.frame_start)
    bpy.context.view_layer.update()
    travel = sun.matrix_world.to_3x3() @ Vector((0, 0, -1))
    expected = (shot.camera.matrix_world.to_3x3().inverted() @ travel).normalized()
    assert data["sun_direction_camera"] == pytest.approx(list(expected), abs=1e-4)
    assert data["set"]["time_of_day"] == "GOLDEN_HOUR"
    assert data["camera"]["lens_mm"] == pytest.approx(35.0)
    assert data["fps"] == pytest.approx(24.0)
