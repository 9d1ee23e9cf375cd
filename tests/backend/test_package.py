"""The backend's shot-package reader: a valid package loads; each kind of bad input gets its sentence."""

import json
import zipfile

import pytest

from standin.ai_backend.engine import EngineInputError, JobSpec, frames_of
from standin.ai_backend.package import Limits, ShotPackage, extract_zip


def test_a_package_loads_with_its_frames_size_and_characters(make_package):
    package = ShotPackage.load(make_package(frames=3, width=64, height=48, frame_start=73))
    assert package.frames == [73, 74, 75] and (package.width, package.height) == (64, 48)
    assert [c["name"] for c in package.characters] == ["Mara", "Theo"]
    assert package.image("depth", 73).shape == (48, 64, 3)
    assert package.mask("Mara", 74).sum() > 0 and not package.mask("Mara", 74)[0, 0]
    assert package.has("depth_bg") and not package.has("nonsense")
    assert frames_of(package, JobSpec(frames=(75, 73))) == [73, 75]
    with pytest.raises(EngineInputError, match="not in the package"):
        frames_of(package, JobSpec(frames=(1,)))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "shot.json").unlink(), "no shot.json"),
        (lambda root: (root / "shot.json").write_text("{nope"), "not valid JSON"),
        (lambda root: _edit(root, complete=False), "not marked complete"),
        (lambda root: _edit(root, width="64"), "whole number"),
        (lambda root: (root / "depth" / "0002.png").unlink(), "depth pass is missing for frame 2"),
        (lambda root: (root / "canny" / "0001.png").write_bytes(b"\x89PNG broken"), "not a readable PNG"),
        (lambda root: _edit(root, width=80), "all passes of a shot must have one size"),
        (lambda root: _edit(root, frame_end=5000), "limit is 100"),
        (lambda root: _edit(root, width=4096, height=4096), "8–2048 px"),
        (lambda root: _rename_mask(root), "mask of Mara is missing"),
        (lambda root: _edit(root, characters=["x"]), "list of objects"),
    ],
)
def test_bad_packages_get_a_sentence_that_says_what_to_fix(make_package, damage, message):
    root = make_package(frames=3)
    damage(root)
    with pytest.raises(EngineInputError, match=message):
        ShotPackage.load(root, Limits(max_frames=100))


def _edit(root, **changes):
    meta = json.loads((root / "shot.json").read_text())
    meta.update(changes)
    (root / "shot.json").write_text(json.dumps(meta))


def _rename_mask(root):
    (root / "mask" / "Mara").rename(root / "mask" / "Someone")


def test_zips_unpack_safely(make_package, tmp_path):
    root = make_package(frames=2)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        for path in root.rglob("*"):
            if path.is_file():
                archive.write(path, f"SQ010_SH0010/{path.relative_to(root)}")
    folder = extract_zip(good, tmp_path / "unpacked")
    assert ShotPackage.load(folder).frames == [1, 2]

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.raises(EngineInputError, match="outside the package"):
        extract_zip(evil, tmp_path / "evil")
    assert not (tmp_path / "outside.txt").exists()
    corrupt = tmp_path / "corrupt.zip"
    data = bytearray(good.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len("SQ010_SH0010/")
    data[start + 40] ^= 0xFF  # damage the first file's compressed bytes: its CRC no longer matches
    corrupt.write_bytes(bytes(data))
    with pytest.raises(EngineInputError, match="could not be unpacked"):
        extract_zip(corrupt, tmp_path / "corrupt")
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(EngineInputError, match="not a zip"):
        extract_zip(tmp_path / "not.zip", tmp_path / "x")


def _with_reference(root, name="Mara", size=(40, 30), relative=None):
    """Give ``name`` a reference image (a red rectangle) the way the add-on writes it."""
    import cv2
    import numpy as np

    relative = relative or f"reference/{name}.png"
    (root / "reference").mkdir(exist_ok=True)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[..., 2] = 200  # BGR: red
    cv2.imwrite(str(root / "reference" / f"{name}.png"), pixels)
    meta = json.loads((root / "shot.json").read_text())
    for character in meta["characters"]:
        if character["name"] == name:
            character["reference"] = relative
    (root / "shot.json").write_text(json.dumps(meta))
    return root


def test_a_character_reference_image_is_read_as_rgb(make_package):
    package = ShotPackage.load(_with_reference(make_package(frames=1)))
    reference = package.reference("Mara")
    assert reference.shape == (30, 40, 3) and tuple(reference[0, 0]) == (200, 0, 0)
    assert package.reference("Theo") is None and package.reference("Nobody") is None


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "reference" / "Mara.png").unlink(), "Mara: its reference image reference/Mara.png is "
                                                              "missing from the package"),
    (lambda root: (root / "reference" / "Mara.png").write_bytes(b"nope"), "not a readable PNG"),
    (lambda root: _with_reference(root, relative="../outside.png"), "must name a PNG in the package's reference/"),
    (lambda root: _with_reference(root, relative="mask/Mara/0001.png"), "must name a PNG"),
    (lambda root: _with_reference(root, relative="reference/Mara.jpg"), "must name a PNG"),
    (lambda root: _with_reference(root, size=(120, 20)),
     "reference image is 120×20 px; each side must be at most 100"),
])
def test_bad_reference_images_are_refused_with_a_sentence(make_package, damage, message):
    root = _with_reference(make_package(frames=1))
    damage(root)
    with pytest.raises(EngineInputError, match=message):
        ShotPackage.load(root, Limits(max_edge=100))
