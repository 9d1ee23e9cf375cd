# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and check a shot package (``shot.json`` + pass folders) as it arrives at the backend.

A package is read from one of two sources, chosen by ``ShotPackage.load`` from what it is given:

- a folder (``FolderSource``): ``shot.json`` at its top, one file per pass and frame;
- a zip (``ZipSource``): the same files in an archive, read where they lie, never unpacked, with the
  package at the shallowest ``shot.json`` in it (so a zip of the folder itself works too). The
  server keeps an uploaded zip as the job's package: unpacking 400 files costs more than the
  engine's whole run of a small job on a slow disk.

Both sources answer the same two questions (is there a file at this relative path; its bytes), so
everything above them (``image``, ``grey``, ``mask``, ``reference``, ``has``, ``exists``, and every
check of ``load``) is one code with one set of sentences. A zip is also checked as a zip when it is
opened, from its central directory: the number of entries, the total unpacked size, each entry's
ratio of unpacked to packed bytes (a zip bomb), entry names that would land outside the package
(``..``, absolute, a drive), names that appear twice, symbolic links, encrypted entries and unknown
compression methods. A member's bytes are read (and their CRC checked) when they are needed, like a
folder's files: a damaged frame is found when it is read, with the same sentence as a broken PNG.

Everything a request can get wrong is an ``EngineInputError`` with a sentence that says what to
fix: a missing or incomplete shot.json, a missing pass, a broken PNG, passes of mismatched sizes,
too many frames, an image too large, a zip entry that would land outside its folder.

A character may carry ``"reference": "reference/<name>.png"``: its reference image (the IP-Adapter
input for a bit part), any size up to ``Limits.max_edge`` per side, read with ``reference(name)``.

Thread safety: a loaded package is read-only; the runner's thread and request threads may read the
same one at once. A ``ZipSource`` keeps no open file: each read opens the zip, reads one member at
the offset its index gives and closes it (as fast as a folder's open-read-close, and nothing holds
the file open, so the job's zip can be deleted, on Windows too, once the job is over).
"""

from __future__ import annotations

import json
import pathlib
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from .engine import EngineInputError

BACKGROUND_MASK = "_background"
REFERENCE_FOLDER = "reference"
SHOT_JSON = "shot.json"

#: an entry that unpacks to more than ZIP_BOMB_RATIO times its packed size is refused (deflate tops
#: out near 1000×; PNGs, stored or deflated, are ~1×, JSON ~5-20×) when it unpacks to over this
#: many bytes (a small, very regular file is no threat)
ZIP_BOMB_RATIO = 100
ZIP_BOMB_FLOOR = 1024 * 1024
#: compression methods a package entry may use: stored, deflated, bzip2, lzma
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip entry's local file header (30 bytes)
_LOCAL_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Limits:
    max_frames: int = 2000
    max_edge: int = 2048
    max_characters: int = 16
    max_upload_bytes: int = 2 * 1024**3
    max_files: int = 100_000


# -- sources ----------------------------------------------------------------------------------


class PackageSource(Protocol):
    """Where a package's files come from; ``name`` is always a relative POSIX path (``depth/0001.png``)."""

    #: what ``ShotPackage.load`` was given: the folder, or the zip file
    location: pathlib.Path

    def is_file(self, name: str) -> bool:
        """Whether the package holds a file at ``name``."""

    def read(self, name: str) -> bytes | None:
        """The bytes of the file at ``name``, or None when there is none; ``EngineInputError`` if it
        is there but cannot be read (a damaged zip entry)."""


class FolderSource:
    """A package folder on disk (``shot.json`` at its top). Files are looked at when asked for: one
    removed after loading is missing."""

    kind = "folder"

    def __init__(self, root: pathlib.Path):
        self.location = pathlib.Path(root)

    def is_file(self, name: str) -> bool:
        return (self.location / name).is_file()

    def read(self, name: str) -> bytes | None:
        try:
            return (self.location / name).read_bytes()
        except OSError:  # missing, a folder, unreadable: the package lacks that file
            return None

    def __repr__(self) -> str:
        return f"FolderSource({str(self.location)!r})"


class ZipSource:
    """A package inside a zip, read in place. ``open`` checks the archive and indexes the package's
    entries (relative to the folder of its shallowest ``shot.json``); reads use that index."""

    kind = "zip"

    def __init__(self, location: pathlib.Path, members: dict[str, zipfile.ZipInfo], prefix: str = ""):
        self.location = pathlib.Path(location)
        self.prefix = prefix
        self._members = members

    @classmethod
    def open(cls, location: pathlib.Path, limits: Limits = Limits()) -> "ZipSource":
        location = pathlib.Path(location)
        members = _zip_index(location, limits)
        found = sorted((name for name in members if name == SHOT_JSON or name.endswith("/" + SHOT_JSON)),
                       key=lambda name: (name.count("/"), name))
        if not found:
            raise EngineInputError("the zip has no shot.json: zip the shot's package folder.")
        prefix = found[0][: -len(SHOT_JSON)]
        return cls(location, {name[len(prefix):]: info for name, info in members.items() if name.startswith(prefix)},
                   prefix)

    def names(self) -> list[str]:
        """Every file of the package, relative to its top, in the zip's order."""
        return list(self._members)

    def is_file(self, name: str) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes | None:
        info = self._members.get(name)
        if info is None:
            return None
        try:
            with open(self.location, "rb") as handle:  # one handle per read: nothing shared between threads
                return _read_member(handle, info)
        except FileNotFoundError:
            raise EngineInputError("the package's zip is no longer on the server: send the job again.") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
                struct.error) as error:
            raise EngineInputError(f"the zip could not be unpacked ({error}): zip the package again.") from None

    def __repr__(self) -> str:
        return f"ZipSource({str(self.location)!r}, prefix={self.prefix!r}, {len(self._members)} files)"


def _zip_index(location: pathlib.Path, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    """{clean relative name: entry} of every file in the zip, after checking the archive as a whole
    and each entry's name, kind, method and sizes (from the central directory; nothing is unpacked)."""
    try:
        with zipfile.ZipFile(location) as archive:
            entries = archive.infolist()
        size = location.stat().st_size
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error, UnicodeDecodeError,
            OSError):
        raise EngineInputError("the upload is not a zip file.") from None
    if len(entries) > limits.max_files:
        raise EngineInputError(f"the zip holds {len(entries)} files; the limit is {limits.max_files}.")
    if sum(entry.file_size for entry in entries) > limits.max_upload_bytes:
        raise EngineInputError("the zip unpacks to more than the upload limit.")
    members: dict[str, zipfile.ZipInfo] = {}
    for entry in entries:
        name = entry.filename
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or pathlib.PureWindowsPath(name).drive:
            raise EngineInputError(f"zip entry {name!r} points outside the package: refused.")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise EngineInputError(f"zip entry {name!r} is a symbolic link: zip the files themselves.")
        clean = "/".join(part for part in parts if part not in ("", "."))
        if entry.is_dir() or not clean:
            continue
        if clean in members:
            raise EngineInputError(f"zip entry {name!r} is in the zip twice: zip the package again.")
        if entry.flag_bits & 0x41:  # encrypted, or strongly encrypted
            raise EngineInputError(f"zip entry {name!r} is encrypted: zip the package without a password.")
        if entry.compress_type not in ZIP_METHODS or entry.flag_bits & 0x20:
            raise EngineInputError(f"zip entry {name!r} uses a compression method this server cannot read "
                                   f"({entry.compress_type}): zip the package with 'deflate' or 'store'.")
        if entry.file_size > ZIP_BOMB_FLOOR and entry.file_size > ZIP_BOMB_RATIO * max(entry.compress_size, 1):
            raise EngineInputError(f"zip entry {name!r} unpacks to {entry.file_size} bytes from "
                                   f"{entry.compress_size}, over {ZIP_BOMB_RATIO} times: a zip bomb, refused.")
        if entry.header_offset + entry.compress_size > size:
            raise EngineInputError(f"zip entry {name!r} lies past the end of the zip: the zip is damaged; "
                                   f"zip the package again.")
        members[clean] = entry
    return members


def _read_member(handle, info: zipfile.ZipInfo) -> bytes:
    """One entry's bytes from an open zip file, the way ``ZipFile.open`` finds them (its local header
    checked against the central directory), with its size and CRC checked."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile(f"truncated header of {info.filename!r}")
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_MAGIC:
        raise zipfile.BadZipFile(f"bad magic number in the header of {info.filename!r}")
    name_length, extra_length = fields[10], fields[11]
    raw_name = handle.read(name_length)
    stored_name = raw_name.decode("utf-8" if fields[3] & 0x800 else "cp437", errors="replace")
    if stored_name != info.orig_filename:
        raise zipfile.BadZipFile(f"file name in directory {info.orig_filename!r} and header {stored_name!r} differ")
    handle.seek(extra_length, 1)
    if info.compress_type == zipfile.ZIP_STORED:
        data = handle.read(info.compress_size)
        if len(data) != info.file_size:
            raise EOFError(f"{info.filename!r} is cut short")
        if zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        return data
    # deflate, bzip2, lzma: zipfile decompresses, stops at the declared size and checks the CRC
    return zipfile.ZipExtFile(handle, "r", info).read()


def open_source(location: pathlib.Path, limits: Limits = Limits()) -> PackageSource:
    """The source for ``location``: a zip when it is a file, else a folder."""
    location = pathlib.Path(location)
    return ZipSource.open(location, limits) if location.is_file() else FolderSource(location)


# -- the package ------------------------------------------------------------------------------


@dataclass
class ShotPackage:
    source: PackageSource
    meta: dict
    frames: list[int]
    width: int
    height: int
    characters: list[dict] = field(default_factory=list)

    @property
    def root(self) -> pathlib.Path:
        """What the package was loaded from: its folder, or its zip."""
        return self.source.location

    @property
    def shot(self) -> str:
        return self.meta["shot"]

    @staticmethod
    def member(kind: str, frame: int, character: str | None = None) -> str:
        """The relative name of a pass file (``depth/0001.png``) or, with ``character``, of a mask."""
        folder = f"mask/{character}" if character is not None else kind
        return f"{folder}/{frame:04d}.png"

    def exists(self, kind: str, frame: int, character: str | None = None) -> bool:
        """Whether the package holds that pass (or mask) file for ``frame`` (not whether it decodes)."""
        return self.source.is_file(self.member(kind, frame, character))

    def has(self, kind: str) -> bool:
        return all(self.exists(kind, f) for f in self.frames)

    def image(self, kind: str, frame: int) -> np.ndarray:
        """A pass as RGB uint8 (H, W, 3), or the 16-bit raw depth as (H, W) uint16."""
        return _read_png(self.source, self.member(kind, frame), (self.height, self.width))

    def grey(self, kind: str, frame: int, character: str | None = None) -> np.ndarray:
        """A pass (or, with ``character``, a mask) decoded straight to grey uint8 (H, W): no RGB copy."""
        return _decode_png(self.source, self.member(kind, frame, character), (self.height, self.width),
                           cv2.IMREAD_GRAYSCALE)

    def mask(self, character: str, frame: int) -> np.ndarray:
        """Where ``character`` is visible, as a bool (H, W) array."""
        pixels = _read_png(self.source, self.member("mask", frame, character), (self.height, self.width))
        return (pixels[..., 0] if pixels.ndim == 3 else pixels) > 127

    def reference(self, character: str, limits: Limits = Limits()) -> np.ndarray | None:
        """``character``'s reference image as RGB uint8 (H, W, 3), or None when it has none."""
        entry = next((c for c in self.characters if c.get("name") == character), None)
        if entry is None or not entry.get("reference"):
            return None
        return _read_reference(self.source, character, entry["reference"], limits.max_edge)

    @classmethod
    def load(cls, location: pathlib.Path, limits: Limits = Limits(),
             required: tuple[str, ...] = ("depth", "canny", "openpose")) -> "ShotPackage":
        """Load and check the package in ``location``: a package folder, or a zip file holding one."""
        return cls.from_source(open_source(location, limits), limits, required)

    @classmethod
    def from_source(cls, source: PackageSource, limits: Limits = Limits(),
                    required: tuple[str, ...] = ("depth", "canny", "openpose")) -> "ShotPackage":
        meta = _shot_json(source)
        frames = list(range(int(meta["frame_start"]), int(meta["frame_end"]) + 1))
        width, height = int(meta["width"]), int(meta["height"])
        if not frames:
            raise EngineInputError("shot.json has an empty frame range: frame_end is before frame_start.")
        if len(frames) > limits.max_frames:
            raise EngineInputError(f"the package has {len(frames)} frames; the limit is {limits.max_frames}.")
        if not (8 <= width <= limits.max_edge and 8 <= height <= limits.max_edge):
            raise EngineInputError(
                f"passes are {width}×{height} px; each side must be 8–{limits.max_edge} px (render them smaller)."
            )
        characters = meta.get("characters", [])
        if not isinstance(characters, list) or not all(isinstance(c, dict) for c in characters):
            raise EngineInputError("shot.json 'characters' must be a list of objects with a 'name'.")
        if len(characters) > limits.max_characters:
            raise EngineInputError(f"{len(characters)} characters; the limit is {limits.max_characters}.")
        package = cls(source, meta, frames, width, height, characters)
        for kind in required:
            missing = [f for f in frames if not package.exists(kind, f)]
            if missing:
                raise EngineInputError(
                    f"the {kind} pass is missing for frame {missing[0]} ({len(missing)} frames): "
                    f"send the whole package as StandIn writes it."
                )
            package.image(kind, frames[0])  # decodes, and checks the size
        for character in characters:
            name = str(character.get("name", ""))
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise EngineInputError(f"character name {name!r} is not usable as a mask folder name.")
            if not package.exists("mask", frames[0], character=name):
                raise EngineInputError(f"the mask of {name} is missing: expected mask/{name}/{frames[0]:04d}.png.")
            package.reference(name, limits)  # decodes, and checks where it is and its size
        return package


def _shot_json(source: PackageSource) -> dict:
    data = source.read(SHOT_JSON)
    if data is None:
        raise EngineInputError("the package has no shot.json: send the folder StandIn wrote for the shot.")
    try:
        meta = json.loads(data)
    except ValueError as error:
        raise EngineInputError(f"shot.json is not valid JSON ({error}).") from None
    if not isinstance(meta, dict) or meta.get("complete") is not True:
        raise EngineInputError("shot.json is not marked complete: the passes were interrupted; render them again.")
    for key in ("shot", "frame_start", "frame_end", "width", "height"):
        if key not in meta:
            raise EngineInputError(f"shot.json lacks '{key}'.")
    for key in ("frame_start", "frame_end", "width", "height"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool):
            raise EngineInputError(f"shot.json '{key}' must be a whole number.")
    return meta


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header without decoding it, or None if ``data`` is no PNG."""
    if len(data) >= 24 and data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def _decode_png(source: PackageSource, name: str, size: tuple[int, int], flags: int) -> np.ndarray:
    """Read and decode one pass file with OpenCV ``flags``, checking it is there and of ``size``
    (from the PNG's header first: a small file that declares a huge image is never decoded)."""
    label = "/".join(name.split("/")[-2:])
    data = source.read(name)
    if data is None:
        raise EngineInputError(f"{label} is missing from the package.")
    declared = _png_size(data)
    if declared is not None and declared[::-1] != size:
        _wrong_size(label, declared, size)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if pixels is None:
        raise EngineInputError(f"{label} is not a readable PNG.")
    if pixels.shape[:2] != size:
        _wrong_size(label, (pixels.shape[1], pixels.shape[0]), size)
    return pixels


def _wrong_size(label: str, actual: tuple[int, int], size: tuple[int, int]):
    raise EngineInputError(
        f"{label} is {actual[0]}×{actual[1]} px but shot.json says "
        f"{size[1]}×{size[0]}: all passes of a shot must have one size."
    )


def _read_reference(source: PackageSource, character: str, relative, max_edge: int) -> np.ndarray:
    """A character's reference image, checked to be a PNG under reference/ no larger than ``max_edge``."""
    parts = relative.split("/") if isinstance(relative, str) else []
    if (len(parts) != 2 or parts[0] != REFERENCE_FOLDER or parts[1] in ("", ".", "..") or "\\" in relative
            or not parts[1].lower().endswith(".png")):
        raise EngineInputError(f"character {character}: 'reference' must name a PNG in the package's "
                               f"{REFERENCE_FOLDER}/ folder (like \"{REFERENCE_FOLDER}/{character}.png\"), "
                               f"not {relative!r}.")
    data = source.read(relative)
    if data is None:
        raise EngineInputError(f"character {character}: its reference image {relative} is missing from the "
                               f"package: send the whole package as StandIn writes it.")
    declared = _png_size(data)
    if declared is not None and max(declared) > max_edge:
        _reference_too_large(character, declared, max_edge)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if pixels is None:
        raise EngineInputError(f"character {character}: {relative} is not a readable PNG; "
                               f"write the shot's passes again.")
    height, width = pixels.shape[:2]
    if max(width, height) > max_edge:
        _reference_too_large(character, (width, height), max_edge)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _reference_too_large(character: str, size: tuple[int, int], max_edge: int):
    raise EngineInputError(f"character {character}: the reference image is {size[0]}×{size[1]} px; each side "
                           f"must be at most {max_edge} px (StandIn writes it at most 1024 px).")


def _read_png(source: PackageSource, name: str, size: tuple[int, int]) -> np.ndarray:
    pixels = _decode_png(source, name, size, cv2.IMREAD_UNCHANGED)
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim == 3:
        return cv2.cvtColor(pixels[..., :3], cv2.COLOR_BGR2RGB)
    return pixels


def extract_zip(zip_path: pathlib.Path, dest: pathlib.Path, limits: Limits = Limits()) -> pathlib.Path:
    """Unpack the package in a zip into ``dest`` (checked as ``ZipSource.open`` checks it, every
    file's CRC checked as it is written); returns ``dest``, which then holds shot.json. For a zip
    that is the package as it is, load the zip itself instead: nothing to unpack."""
    source = ZipSource.open(pathlib.Path(zip_path), limits)
    dest = pathlib.Path(dest)
    for name in source.names():
        target = dest / name
        data = source.read(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            raise EngineInputError(f"zip entry {source.prefix + name!r} is both a file and a folder in the zip: "
                                   f"zip the package again.") from None
    return dest
