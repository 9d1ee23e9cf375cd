"""The backend's shot-package reader: a valid package loads; each kind of bad input gets its sentence.

Every case runs against both sources a package can come from: its folder, and a zip of that folder
read in place (``load`` given the zip). The zip is also attacked as a zip: names that leave the
package, a zip bomb, a huge declared size, duplicate names, links, encryption, damaged entries.
"""

import json
import stat
import struct
import threading
import zipfile

import cv2
import numpy as np
import pytest

from standin.ai_backend.engine import EngineInputError, JobSpec, frames_of
from standin.ai_backend.package import (ZIP_BOMB_FLOOR, FolderSource, Limits, ShotPackage, ZipSource, extract_zip,
                                        open_source)

#: the folder at the top of a zip, as a user (or the add-on) zips a package folder
TOP = "SQ010_SH0010/"


def zip_folder(root, target, top: str = TOP, extra: dict | None = None):
    """``root`` as a zip at ``target``: PNGs stored, the rest deflated, as the add-on zips it."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                method = zipfile.ZIP_STORED if path.suffix == ".png" else zipfile.ZIP_DEFLATED
                archive.write(path, top + path.relative_to(root).as_posix(), compress_type=method)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


@pytest.fixture(params=["folder", "zip"])
def load(request, tmp_path):
    """``load(root, limits, **kwargs)``: ``ShotPackage.load`` of the folder, or of a zip of it."""
    counter = iter(range(1000))

    def load(root, limits=Limits(), **kwargs):
        if request.param == "zip":
            root = zip_folder(root, tmp_path / f"upload{next(counter)}.zip")
        return ShotPackage.load(root, limits, **kwargs)

    load.kind = request.param
    return load


def test_a_package_loads_with_its_frames_size_and_characters(make_package, load):
    package = load(make_package(frames=3, width=64, height=48, frame_start=73))
    assert package.source.kind == load.kind
    assert package.frames == [73, 74, 75] and (package.width, package.height) == (64, 48)
    assert [c["name"] for c in package.characters] == ["Mara", "Theo"]
    assert package.image("depth", 73).shape == (48, 64, 3)
    assert package.image("depth_raw", 74).dtype == np.uint16
    assert package.mask("Mara", 74).sum() > 0 and not package.mask("Mara", 74)[0, 0]
    assert package.grey("mask", 75, "Theo").shape == (48, 64)
    assert package.has("depth_bg") and not package.has("nonsense")
    assert package.exists("mask", 73, "Mara") and not package.exists("mask", 73, "Nobody")
    assert frames_of(package, JobSpec(frames=(75, 73))) == [73, 75]
    with pytest.raises(EngineInputError, match="not in the package"):
        frames_of(package, JobSpec(frames=(1,)))


def test_both_sources_give_the_same_pixels(make_package, tmp_path):
    root = make_package(frames=3)
    folder = ShotPackage.load(root)
    zipped = ShotPackage.load(zip_folder(root, tmp_path / "p.zip"))
    assert isinstance(folder.source, FolderSource) and isinstance(zipped.source, ZipSource)
    assert zipped.root == tmp_path / "p.zip" and zipped.source.prefix == TOP and folder.root == root
    assert zipped.meta == folder.meta
    for frame in folder.frames:
        for kind in ("depth", "depth_raw", "canny", "openpose", "depth_bg"):
            np.testing.assert_array_equal(zipped.image(kind, frame), folder.image(kind, frame))
            np.testing.assert_array_equal(zipped.grey(kind, frame), folder.grey(kind, frame))
        np.testing.assert_array_equal(zipped.mask("Theo", frame), folder.mask("Theo", frame))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "shot.json").unlink(), "no shot.json"),
        (lambda root: (root / "shot.json").write_text("{nope"), "not valid JSON"),
        (lambda root: (root / "shot.json").write_bytes(b"\xff\xfe\xfa"), "not valid JSON"),
        (lambda root: _edit(root, complete=False), "not marked complete"),
        (lambda root: _edit(root, width="64"), "whole number"),
        (lambda root: _edit(root, frame_start=3, frame_end=1), "empty frame range"),
        (lambda root: (root / "depth" / "0002.png").unlink(), "depth pass is missing for frame 2"),
        (lambda root: (root / "canny" / "0001.png").write_bytes(b"\x89PNG broken"), "canny/0001.png is not a "
                                                                                   "readable PNG"),
        (lambda root: (root / "openpose" / "0001.png").write_bytes(b""), "openpose/0001.png is not a readable PNG"),
        (lambda root: _edit(root, width=80), "depth/0001.png is 64×48 px but shot.json says 80×48: all passes"),
        (lambda root: _declare_size(root / "canny" / "0001.png", 60000, 60000),
         "canny/0001.png is 60000×60000 px but shot.json says 64×48"),
        (lambda root: _edit(root, frame_end=5000), "limit is 100"),
        (lambda root: _edit(root, width=4096, height=4096), "8–2048 px"),
        (lambda root: _rename_mask(root), "mask of Mara is missing: expected mask/Mara/0001.png"),
        (lambda root: _edit(root, characters=["x"]), "list of objects"),
        (lambda root: _edit(root, characters=[{"name": "../x"}]), "not usable as a mask folder name"),
    ],
)
def test_bad_packages_get_a_sentence_that_says_what_to_fix(make_package, load, damage, message):
    root = make_package(frames=3)
    damage(root)
    with pytest.raises(EngineInputError, match=message):
        load(root, Limits(max_frames=100))


def test_a_frame_broken_after_the_first_is_found_when_it_is_read(make_package, load):
    root = make_package(frames=3)
    (root / "canny" / "0003.png").write_bytes(b"\x89PNG broken")
    package = load(root)  # load decodes each pass's first frame only
    with pytest.raises(EngineInputError, match="canny/0003.png is not a readable PNG"):
        package.grey("canny", 3)


def test_required_passes_are_what_the_caller_asks_for(make_package, load):
    root = make_package(frames=2)
    for path in (root / "openpose").iterdir():
        path.unlink()
    with pytest.raises(EngineInputError, match="openpose pass is missing for frame 1 \\(2 frames\\)"):
        load(root)
    assert not load(root, required=("depth", "canny")).has("openpose")


def _edit(root, **changes):
    meta = json.loads((root / "shot.json").read_text())
    meta.update(changes)
    (root / "shot.json").write_text(json.dumps(meta))


def _rename_mask(root):
    (root / "mask" / "Mara").rename(root / "mask" / "Someone")


def _declare_size(path, width, height):
    """Make a PNG's header claim another size (a tiny file that would decode to gigabytes)."""
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    path.write_bytes(bytes(data))


# -- references -------------------------------------------------------------------------------


def _with_reference(root, name="Mara", size=(40, 30), relative=None):
    """Give ``name`` a reference image (a red rectangle) the way the add-on writes it."""
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


def test_a_character_reference_image_is_read_as_rgb(make_package, load):
    package = load(_with_reference(make_package(frames=1)))
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
    (lambda root: _declare_size(root / "reference" / "Mara.png", 50000, 20),
     "reference image is 50000×20 px; each side must be at most 100"),
])
def test_bad_reference_images_are_refused_with_a_sentence(make_package, load, damage, message):
    root = _with_reference(make_package(frames=1))
    damage(root)
    with pytest.raises(EngineInputError, match=message):
        load(root, Limits(max_edge=100))


# -- the zip as a zip -------------------------------------------------------------------------


def test_the_package_is_at_the_shallowest_shot_json(make_package, tmp_path):
    root = make_package(frames=2)
    decoy = json.dumps({"complete": False})
    for top in ("", "deep/er/"):
        upload = zip_folder(root, tmp_path / f"{len(top)}.zip", top=top, extra={"zzz/nested/shot.json": decoy})
        package = ShotPackage.load(upload)
        assert package.source.prefix == top and package.frames == [1, 2]
    assert open_source(root).kind == "folder" and open_source(upload).kind == "zip"


def _write_zip(path, entries):
    """A zip of (name or ZipInfo, bytes) entries, written as they come (even when unsafe)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", TOP + "../../x", "/etc/x", "/x", "C:/x", "C:x",
                                  TOP + "depth/../../x"])
def test_zip_entries_that_leave_the_package_are_refused(make_package, tmp_path, name):
    upload = zip_folder(make_package(frames=1), tmp_path / "evil.zip", extra={name: b"evil"})
    with pytest.raises(EngineInputError, match="points outside the package: refused"):
        ShotPackage.load(upload)
    with pytest.raises(EngineInputError, match="points outside the package: refused"):
        extract_zip(upload, tmp_path / "unpacked")
    assert not (tmp_path / "x").exists() and not (tmp_path / "unpacked").exists()


def test_a_zip_bomb_is_refused(make_package, tmp_path):
    root = make_package(frames=1)
    bomb = tmp_path / "bomb.zip"
    zip_folder(root, bomb)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as archive:  # 4 MiB of zeros packs to ~4 KiB
        archive.writestr(TOP + "depth/0002.png", bytes(4 * ZIP_BOMB_FLOOR))
    with pytest.raises(EngineInputError, match=r"depth/0002.png' unpacks to 4194304 bytes from \d+, over 100 "
                                               r"times: a zip bomb, refused"):
        ShotPackage.load(bomb)
    # a big file that packs well, but not like a bomb, is fine (JSON packs ~5-20 times)
    fine = tmp_path / "fine.zip"
    zip_folder(root, fine, extra={TOP + "notes.txt": np.random.default_rng(1).integers(48, 58, 3 * ZIP_BOMB_FLOOR,
                                                                                       np.uint8).tobytes()})
    with zipfile.ZipFile(fine, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(TOP + "notes.txt2", bytes(2 * ZIP_BOMB_FLOOR // 3))  # small: under the floor
    assert ShotPackage.load(fine).frames == [1]


def _patch_central(path, name: str, **fields):
    """Change fields of ``name``'s central directory record in place (what a hostile zip declares)."""
    offsets = {"flags": (8, "<H"), "compressed": (20, "<I"), "size": (24, "<I")}
    data = bytearray(path.read_bytes())
    start = 0
    while True:
        start = data.index(b"PK\x01\x02", start)
        length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46:start + 46 + length].decode() == name:
            break
        start += 4
    for key, value in fields.items():
        offset, form = offsets[key]
        struct.pack_into(form, data, start + offset, value)
    path.write_bytes(bytes(data))


def test_a_huge_declared_size_is_refused_before_anything_is_read(make_package, tmp_path):
    upload = zip_folder(make_package(frames=1), tmp_path / "huge.zip")
    _patch_central(upload, TOP + "depth/0001.png", size=3 * 2**30)  # 3 GiB, from a file of a few KiB
    with pytest.raises(EngineInputError, match="unpacks to more than the upload limit"):
        ShotPackage.load(upload)
    with pytest.raises(EngineInputError, match="unpacks to more than the upload limit"):
        ShotPackage.load(zip_folder(make_package(frames=2), tmp_path / "big.zip"), Limits(max_upload_bytes=1000))
    past = zip_folder(make_package(frames=1), tmp_path / "past.zip")
    _patch_central(past, TOP + "canny/0001.png", compressed=2**31)
    with pytest.raises(EngineInputError, match="lies past the end of the zip"):
        ShotPackage.load(past)


def test_a_declared_size_that_lies_is_a_damaged_zip(make_package, tmp_path):
    upload = zip_folder(make_package(frames=1), tmp_path / "lie.zip")
    _patch_central(upload, TOP + "depth/0001.png", size=100)  # stored: the data is longer than that
    with pytest.raises(EngineInputError, match="the zip could not be unpacked"):
        ShotPackage.load(upload)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicate_names_links_and_encryption_are_refused(make_package, tmp_path):
    root = make_package(frames=1)
    png = (root / "depth" / "0001.png").read_bytes()
    for extra, message in [
        ({TOP + "depth/0001.png": png}, "'SQ010_SH0010/depth/0001.png' is in the zip twice"),
        ({"./" + TOP + "depth//0001.png": png}, "is in the zip twice"),
    ]:
        with pytest.raises(EngineInputError, match=message):
            ShotPackage.load(zip_folder(root, tmp_path / "twice.zip", extra=extra))

    link = zipfile.ZipInfo(TOP + "reference/Mara.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    upload = zip_folder(root, tmp_path / "link.zip")
    with zipfile.ZipFile(upload, "a") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(EngineInputError, match="reference/Mara.png' is a symbolic link"):
        ShotPackage.load(upload)

    secret = zip_folder(root, tmp_path / "secret.zip")
    _patch_central(secret, TOP + "canny/0001.png", flags=0x1)
    with pytest.raises(EngineInputError, match="canny/0001.png' is encrypted"):
        ShotPackage.load(secret)


def test_too_many_entries_and_not_a_zip(make_package, tmp_path):
    upload = zip_folder(make_package(frames=2), tmp_path / "p.zip")
    with pytest.raises(EngineInputError, match="the zip holds 21 files; the limit is 20"):
        ShotPackage.load(upload, Limits(max_files=20))
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(EngineInputError, match="the upload is not a zip file"):
        ShotPackage.load(tmp_path / "not.zip")
    (tmp_path / "cut.zip").write_bytes(upload.read_bytes()[:-30])  # the central directory cut short
    with pytest.raises(EngineInputError, match="the upload is not a zip file"):
        ShotPackage.load(tmp_path / "cut.zip")
    empty = _write_zip(tmp_path / "empty.zip", [("readme.txt", b"hi")])
    with pytest.raises(EngineInputError, match="the zip has no shot.json"):
        ShotPackage.load(empty)


def _damage_entry(upload, name: str):
    """Flip a byte in the middle of ``name``'s data (its CRC no longer matches)."""
    with zipfile.ZipFile(upload) as archive:
        info = archive.getinfo(name)
    data = bytearray(upload.read_bytes())
    start = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    upload.write_bytes(bytes(data))


def test_damaged_entries_are_a_sentence_at_load_or_when_read(make_package, tmp_path):
    root = make_package(frames=3)
    first = zip_folder(root, tmp_path / "first.zip")
    _damage_entry(first, TOP + "canny/0001.png")  # load reads it
    with pytest.raises(EngineInputError, match="the zip could not be unpacked .*CRC.*: zip the package again"):
        ShotPackage.load(first)
    later = zip_folder(root, tmp_path / "later.zip")
    _damage_entry(later, TOP + "canny/0003.png")  # read by the engine, like a broken PNG in a folder
    package = ShotPackage.load(later)
    with pytest.raises(EngineInputError, match="the zip could not be unpacked .*CRC"):
        package.grey("canny", 3)
    deflated = zip_folder(root, tmp_path / "deflated.zip")
    _damage_entry(deflated, TOP + "shot.json")  # deflated: zipfile's own decompression and CRC check
    with pytest.raises(EngineInputError, match="the zip could not be unpacked"):
        ShotPackage.load(deflated)
    gone = zip_folder(root, tmp_path / "gone.zip")
    package = ShotPackage.load(gone)
    gone.unlink()
    with pytest.raises(EngineInputError, match="no longer on the server"):
        package.image("depth", 2)


def test_a_local_header_that_disagrees_with_the_directory_is_refused(make_package, tmp_path):
    upload = zip_folder(make_package(frames=1), tmp_path / "p.zip")
    data = upload.read_bytes()
    name = (TOP + "depth/0001.png").encode()
    local = data.index(name)  # its first occurrence: in its local header (the central directory comes last)
    upload.write_bytes(data[:local] + (TOP + "depth/0009.png").encode() + data[local + len(name):])
    with pytest.raises(EngineInputError, match="the zip could not be unpacked .*differ"):
        ShotPackage.load(upload)


def test_every_compression_method_reads_the_same(make_package, tmp_path):
    root = make_package(frames=1)
    folder = ShotPackage.load(root)
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        upload = tmp_path / f"{method}.zip"
        with zipfile.ZipFile(upload, "w", method) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
        package = ShotPackage.load(upload)
        np.testing.assert_array_equal(package.image("openpose", 1), folder.image("openpose", 1))


def test_concurrent_readers_of_one_zip_package(make_package, tmp_path):
    """The runner's thread and request threads may read one package at once: every read is whole."""
    root = make_package(frames=4)
    package = ShotPackage.load(zip_folder(root, tmp_path / "p.zip"))
    folder = ShotPackage.load(root)
    expected = {(kind, frame): folder.image(kind, frame) for kind in ("depth", "canny", "openpose")
                for frame in folder.frames}
    errors = []

    def read(offset):
        try:
            for turn in range(25):
                for index, (key, pixels) in enumerate(expected.items()):
                    if (index + offset + turn) % 3 == 0:
                        np.testing.assert_array_equal(package.image(*key), pixels)
        except Exception as error:  # pragma: no cover - the assertion reports it
            errors.append(error)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_extract_zip_unpacks_the_package_checked_the_same_way(make_package, tmp_path):
    root = make_package(frames=2)
    folder = extract_zip(zip_folder(root, tmp_path / "good.zip"), tmp_path / "unpacked")
    assert folder == tmp_path / "unpacked" and ShotPackage.load(folder).frames == [1, 2]
    assert sorted(p.relative_to(folder) for p in folder.rglob("*.png")) == \
        sorted(p.relative_to(root) for p in root.rglob("*.png"))
    corrupt = zip_folder(root, tmp_path / "corrupt.zip")
    _damage_entry(corrupt, TOP + "depth/0002.png")  # extracting reads every entry: any damage is found
    with pytest.raises(EngineInputError, match="could not be unpacked"):
        extract_zip(corrupt, tmp_path / "corrupt")
    clash = zip_folder(root, tmp_path / "clash.zip", extra={TOP + "depth/0001.png/x": b"1"})
    with pytest.raises(EngineInputError, match="both a file and a folder"):
        extract_zip(clash, tmp_path / "clash")
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(EngineInputError, match="not a zip"):
        extract_zip(tmp_path / "not.zip", tmp_path / "x")
