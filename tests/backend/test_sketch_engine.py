# SPDX-License-Identifier: GPL-3.0-or-later
"""The sketch engine on synthetic packages whose content is known (``make_package``: Mara and Theo in
rectangles, a depth ramp, canny edges of the rectangles, a short skeleton per character)."""

import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest

from standin.ai_backend.engine import Cancelled, EngineInputError, JobSpec, ResultFile
from standin.ai_backend.engines import sketch
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.package import ShotPackage

from shot_packages import character_box

W, H = 128, 96


def _run(package, out, **spec):
    spec = JobSpec(**spec)
    engine = SketchEngine()
    engine.check(package, spec)
    steps = []
    results = engine.run(package, spec, out, steps.append)
    return results, steps


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def _frame(package, tmp_path, name, frame=1, **spec):
    _run(package, tmp_path / name, **spec)
    return _read(tmp_path / name / "take01" / f"{frame:04d}.png").astype(int)


@pytest.fixture
def package(make_package):
    return ShotPackage.load(make_package(frames=3, width=W, height=H))


# -- the engine's face ---------------------------------------------------------------------------


def test_describe_names_device_versions_and_options():
    engine = SketchEngine()
    info = engine.describe()
    assert engine.name == "sketch" and engine.kind == "image"
    assert info["device"] == "cpu"
    assert info["versions"] == {"numpy": np.__version__, "opencv": cv2.__version__}
    assert set(info["options"]) == {"skeleton", "labels", "paper"}
    json.dumps(info)  # /v1/health sends it as JSON


# -- determinism and seeds -----------------------------------------------------------------------


def test_same_package_and_spec_give_the_same_bytes(package, tmp_path):
    _run(package, tmp_path / "a", seed=5, takes=2)
    _run(package, tmp_path / "b", seed=5, takes=2)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert len(_digests(tmp_path / "a")) == 6


def test_the_seed_changes_only_the_pencil(package, tmp_path):
    first = _frame(package, tmp_path, "seed5", seed=5)
    other = _frame(package, tmp_path, "seed6", seed=6)
    assert _digests(tmp_path / "seed5") != _digests(tmp_path / "seed6")
    # grain and hatching move a few grey levels; the drawing (washes, tints, ink, labels) stays
    assert np.abs(first - other).max() <= max(sketch.HATCH_DARKNESS) + sketch.GRAIN + 2
    assert np.abs(first - other).mean() < 4


def test_takes_differ_and_take_n_uses_seed_plus_n_minus_1(package, tmp_path):
    _run(package, tmp_path / "two", seed=5, takes=2)
    _run(package, tmp_path / "next", seed=6)
    two = _digests(tmp_path / "two")
    assert {k: v for k, v in two.items() if k.startswith("take01")} != {
        k.replace("take02", "take01"): v for k, v in two.items() if k.startswith("take02")}
    assert {k.replace("take02", "take01"): v for k, v in two.items() if k.startswith("take02")} == \
        _digests(tmp_path / "next")


def test_the_files_are_plain_rgb_pngs_of_the_rendered_frame(package, tmp_path):
    _run(package, tmp_path / "out", seed=3)
    data = (tmp_path / "out" / "take01" / "0002.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (H, W, 3) and decoded.dtype == np.uint8
    style = sketch.Style(package, sketch._options({}))
    expected = style.render(package, 2, sketch.Pencil(H, W, 3))
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), expected)


# -- the look --------------------------------------------------------------------------------------


def _inner(index, frame_offset=0, inset=4):
    x0, y0, x1, y1 = character_box(index, W, H, frame_offset)
    return slice(y0 + inset, y1 - inset), slice(x0 + inset, x1 - inset)


def test_characters_are_tinted_in_their_colour_and_nothing_else_is(package, tmp_path):
    image = _frame(package, tmp_path, "plain", options={"labels": False})
    mara = image[_inner(0)].reshape(-1, 3).mean(axis=0)
    theo = image[_inner(1)].reshape(-1, 3).mean(axis=0)
    assert mara[0] > mara[2] + 30 and mara[0] > mara[1] + 20  # leans red
    assert theo[2] > theo[0] + 30 and theo[2] > theo[1] + 10  # leans blue
    # outside the characters (and away from the ink) every pixel is grey × the paper colour
    near = np.zeros((H, W), np.uint8)
    for index in range(2):
        x0, y0, x1, y1 = character_box(index, W, H)
        near[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = 1
    outside = image[near == 0]
    paper = np.array(sketch.PAPERS["white"])
    assert outside.size
    ratio = outside / paper
    assert np.abs(ratio - ratio.mean(axis=1, keepdims=True)).max() < 0.012


def test_the_paper_option_colours_the_background(package, tmp_path):
    image = _frame(package, tmp_path, "blue", options={"paper": [200, 220, 250], "labels": False})
    corner = image[2:8, W - 14:W - 2].reshape(-1, 3).mean(axis=0)  # far: the lightest wash
    assert np.allclose(corner, [200, 220, 250], atol=sketch.GRAIN + 1)
    cream = _frame(package, tmp_path, "cream", options={"paper": "cream", "labels": False})
    assert np.allclose(cream[2:8, W - 14:W - 2].reshape(-1, 3).mean(axis=0), sketch.PAPERS["cream"],
                       atol=sketch.GRAIN + 1)


def test_near_is_shaded_darker_than_far(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=1, width=W, height=H, characters=()))
    image = _frame(package, tmp_path, "ramp").mean(axis=2)  # depth ramps 40 (top, far) → 120 (bottom)
    assert image[2:10].mean() > image[-10:-2].mean() + 10


def test_ink_lines_where_the_canny_pass_is_white(package, tmp_path):
    image = _frame(package, tmp_path, "plain", options={"labels": False})
    edges = package.image("canny", 1)[..., 0] > 127
    assert edges.sum() > 100
    assert (image[edges] == sketch.INK).all()
    thick = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not (image[~thick] == sketch.INK).all(axis=1).any()
    # thickened: the ink is wider than the one-pixel canny line
    inked = (image == sketch.INK).all(axis=2)
    assert edges.sum() < inked.sum() <= thick.sum()


def _label_region(index, frame_offset=0):
    x0, y0, x1, y1 = character_box(index, W, H, frame_offset)
    return slice(0, y0 + 2), slice(max(0, x0 - 20), min(W, x1 + 20))


def test_each_character_is_named_at_the_top_of_its_mask(package, tmp_path):
    labelled = _frame(package, tmp_path, "on")
    plain = _frame(package, tmp_path, "off", options={"labels": False})
    changed = np.any(labelled != plain, axis=2)
    style = sketch.Style(package, sketch._options({}))
    for index, character in enumerate(package.characters):
        region = _label_region(index)
        assert changed[region].sum() > 30
        mask = (package.mask(character["name"], 1) * 255).astype(np.uint8)
        (x0, y0, x1, y1), _ = sketch.label_box(mask, character["name"], H, W)
        assert y1 < character_box(index, W, H)[1]  # just above the character
        assert changed[y0:y1 + 1, x0:x1 + 1].mean() > 0.8
        tag = labelled[y0 + 1:y1, x0 + 1:x1].reshape(-1, 3)  # inside the tag's ink border
        colour = style.label_colours[index]
        assert (tag == colour).all(axis=1).mean() > 0.4  # mostly the character's colour
        text = np.abs(tag - sketch.label_text_colour(colour)).max(axis=1) < 40  # and the name (antialiased)
        assert text.sum() > 5
    x0, y0, _, _ = character_box(0, W, H)
    assert not changed[y0 + 4:].any()  # tags sit above the characters: nothing drawn lower down
    # white text occurs nowhere else: the paper is never that light
    assert not (plain > 252).all(axis=2).any()


def test_labels_stay_inside_the_frame(make_package, tmp_path):
    mask = np.zeros((H, W), np.uint8)
    mask[0:40, W - 6:W] = 255  # touching the top and right edges
    (x0, y0, x1, y1), (tx, ty) = sketch.label_box(mask, "Theodora", H, W)
    assert 0 <= x0 < x1 < W and 0 <= y0 < y1 < H
    assert x0 < tx and y0 < ty < y1
    assert sketch.label_box(np.zeros((H, W), np.uint8), "Mara", H, W) is None
    # a character out of view in a frame gets no tag there
    root = make_package(frames=1, width=W, height=H)
    cv2.imwrite(str(root / "mask" / "Theo" / "0001.png"), np.zeros((H, W), np.uint8))
    package = ShotPackage.load(root)
    labelled = _frame(package, tmp_path, "on")
    plain = _frame(package, tmp_path, "off", options={"labels": False})
    assert not np.any(labelled[_label_region(1)] != plain[_label_region(1)])
    assert np.any(labelled[_label_region(0)] != plain[_label_region(0)])


def test_the_skeleton_is_drawn_only_where_the_pose_pass_draws(package, tmp_path):
    plain = _frame(package, tmp_path, "plain", options={"labels": False})
    posed = _frame(package, tmp_path, "posed", options={"labels": False, "skeleton": True})
    pose = package.image("openpose", 1).astype(int)
    drawn = pose.max(axis=2) > 0
    changed = np.any(posed != plain, axis=2)
    assert changed.sum() > 20
    assert not (changed & ~drawn).any()
    assert (posed[drawn] == pose[drawn]).all()


# -- frames, takes, progress, cancel ----------------------------------------------------------------


def test_a_frame_subset_and_two_takes(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=4, frame_start=10))
    results, steps = _run(package, tmp_path / "out", frames=(13, 11), takes=2)
    assert results == [ResultFile("take01/0011.png", 1, 11, "frame"), ResultFile("take01/0013.png", 1, 13, "frame"),
                       ResultFile("take02/0011.png", 2, 11, "frame"), ResultFile("take02/0013.png", 2, 13, "frame")]
    assert sorted(_digests(tmp_path / "out")) == [r.path for r in results]
    assert [(s.step, s.total, s.frame) for s in steps] == [(1, 4, 11), (2, 4, 13), (3, 4, 11), (4, 4, 13)]


def test_cancel_from_progress_stops_the_run_and_propagates(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=4))
    calls = []

    def progress(report):
        calls.append(report.step)
        if report.step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        SketchEngine().run(package, JobSpec(takes=2), tmp_path / "out", progress)
    assert calls == [1, 2]
    assert sorted(_digests(tmp_path / "out")) == ["take01/0001.png", "take01/0002.png"]


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"skeletons": True}, "no option 'skeletons'"),
    ({"labels": "yes"}, "'labels' has the wrong type"),
    ({"skeleton": 1}, "'skeleton' has the wrong type"),
    ({"paper": "purple"}, "paper 'purple' is unknown"),
    ({"paper": [300, 0, 0]}, "whole numbers 0–255"),
    ({"paper": [250, 250]}, "whole numbers 0–255"),
    ({"paper": [0.9, 0.9, 0.9]}, "whole numbers 0–255"),
    ({"paper": 3}, "'paper' has the wrong type"),
])
def test_bad_options_are_refused_with_a_sentence(package, options, message):
    with pytest.raises(EngineInputError, match=message):
        SketchEngine().check(package, JobSpec(options=options))


def test_options_it_knows_are_accepted(package):
    for options in ({}, {"skeleton": True, "labels": False, "paper": "grey"}, {"paper": [10, 20, 30]}):
        SketchEngine().check(package, JobSpec(options=options))


def test_a_package_without_the_canny_pass_is_refused(make_package):
    root = make_package(frames=2)
    shutil.rmtree(root / "canny")
    package = ShotPackage.load(root, required=("depth",))
    with pytest.raises(EngineInputError, match="needs the canny pass"):
        SketchEngine().check(package, JobSpec())


def test_missing_depth_pose_or_masks_are_refused(make_package):
    root = make_package(frames=2)
    (root / "mask" / "Theo" / "0002.png").unlink()
    package = ShotPackage.load(root)
    with pytest.raises(EngineInputError, match="mask of Theo"):
        SketchEngine().check(package, JobSpec())
    SketchEngine().check(package, JobSpec(frames=(1,)))  # the frame it has is fine

    root = make_package(frames=1)
    shutil.rmtree(root / "openpose")
    package = ShotPackage.load(root, required=("depth", "canny"))
    SketchEngine().check(package, JobSpec())
    with pytest.raises(EngineInputError, match="needs the openpose pass"):
        SketchEngine().check(package, JobSpec(options={"skeleton": True}))
    shutil.rmtree(root / "depth")
    with pytest.raises(EngineInputError, match="needs the depth pass"):
        SketchEngine().check(package, JobSpec())


def test_frames_outside_the_package_and_bad_specs_are_refused(package, tmp_path):
    with pytest.raises(EngineInputError, match="not in the package"):
        SketchEngine().check(package, JobSpec(frames=(1, 9)))
    with pytest.raises(EngineInputError, match="takes"):
        SketchEngine().check(package, JobSpec(takes=0))
    with pytest.raises(EngineInputError):  # run checks too, before writing anything
        SketchEngine().run(package, JobSpec(options={"paper": "purple"}), tmp_path / "out", lambda p: None)
    assert not (tmp_path / "out").exists()
