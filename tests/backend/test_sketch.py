"""The sketch engine on synthetic packages whose content is known (see conftest.make_package)."""

import hashlib

import cv2
import numpy as np
import pytest

from standin.ai_backend.engine import Cancelled, EngineInputError, JobSpec
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.package import ShotPackage

from shot_packages import character_box


def _run(package, tmp_path, name="out", **spec):
    spec = JobSpec(**spec)
    engine = SketchEngine()
    engine.check(package, spec)
    steps = []
    results = engine.run(package, spec, tmp_path / name, steps.append)
    return results, steps


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.png"))}


def test_same_inputs_same_bytes_and_seeds_change_the_paper(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=3))
    _run(package, tmp_path, "a", seed=5)
    _run(package, tmp_path, "b", seed=5)
    _run(package, tmp_path, "c", seed=6)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_characters_are_tinted_in_their_colour_and_labelled(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=1, width=128, height=96))
    _run(package, tmp_path, "on")
    _run(package, tmp_path, "off", options={"labels": False})
    image = _read(tmp_path / "on" / "take01" / "0001.png").astype(int)
    plain = _read(tmp_path / "off" / "take01" / "0001.png").astype(int)
    for index, (lean, other) in enumerate(((0, 2), (2, 0))):  # Mara leans red, Theo blue
        x0, y0, x1, y1 = character_box(index, 128, 96)
        inside = plain[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3).mean(axis=0)
        assert inside[lean] > inside[other] + 20
        label_band = np.abs(image[max(0, y0 - 20):y0 + 2, x0:x1] - plain[max(0, y0 - 20):y0 + 2, x0:x1])
        assert label_band.sum() > 0  # the name is drawn at the top of the character
    outside = plain[2:10, -20:-4].reshape(-1, 3).mean(axis=0)
    assert outside[0] / outside[2] == pytest.approx(250 / 242, rel=0.01)  # just the paper: no tint there
    assert np.array_equal(image[-6:, :], plain[-6:, :])  # labels only near the characters


def test_ink_where_the_edges_are_and_the_skeleton_on_request(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=1))
    _run(package, tmp_path, "plain", options={"labels": False})
    _run(package, tmp_path, "pose", options={"labels": False, "skeleton": True})
    plain = _read(tmp_path / "plain" / "take01" / "0001.png")
    edges = package.image("canny", 1)[..., 0] > 127
    assert plain[edges].mean() < 60 and plain[~edges].mean() > 150
    pose = _read(tmp_path / "pose" / "take01" / "0001.png")
    changed = np.any(pose != plain, axis=2)
    drawn = package.image("openpose", 1).max(axis=2) > 0
    assert changed.any() and not (changed & ~drawn).any()


def test_frames_takes_progress_and_cancel(make_package, tmp_path):
    package = ShotPackage.load(make_package(frames=4, frame_start=10))
    results, steps = _run(package, tmp_path, "sub", frames=(11, 13), takes=2)
    assert sorted(r.path for r in results) == ["take01/0011.png", "take01/0013.png", "take02/0011.png",
                                               "take02/0013.png"]
    assert [s.step for s in steps] == [1, 2, 3, 4] and steps[-1].total == 4
    assert _digest(tmp_path / "sub" / "take01") != _digest(tmp_path / "sub" / "take02")

    def cancel(progress):
        if progress.step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        SketchEngine().run(package, JobSpec(), tmp_path / "cancelled", cancel)
    assert len(list((tmp_path / "cancelled").rglob("*.png"))) == 2


@pytest.mark.parametrize("options, message", [
    ({"skeletons": True}, "no option 'skeletons'"),
    ({"labels": "yes"}, "wrong type"),
    ({"paper": "purple"}, "paper 'purple' is unknown"),
    ({"paper": [300, 0, 0]}, "whole numbers 0–255"),
])
def test_bad_options_are_refused(make_package, options, message):
    package = ShotPackage.load(make_package(frames=1))
    with pytest.raises(EngineInputError, match=message):
        SketchEngine().check(package, JobSpec(options=options))


def test_a_package_without_edges_is_refused(make_package):
    root = make_package(frames=1)
    for path in (root / "canny").iterdir():
        path.unlink()
    package = ShotPackage.load(root, required=("depth",))
    with pytest.raises(EngineInputError, match="needs the canny pass"):
        SketchEngine().check(package, JobSpec())
