# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and check a shot package (``shot.json`` + pass folders) as it arrives at the backend.

Everything a request can get wrong is an ``EngineInputError`` with a sentence that says what to
fix: a missing or incomplete shot.json, a missing pass, a broken PNG, passes of mismatched sizes,
too many frames, an image too large, a zip entry that would land outside its folder.

A character may carry ``"reference": "reference/<name>.png"``: its reference image (the IP-Adapter
input for a bit part), any size up to ``Limits.max_edge`` per side, read with ``reference(name)``.
"""

from __future__ import annotations

import json
import pathlib
import zipfile
from dataclasses import dataclass, field

import cv2
import numpy as np

from .engine import EngineInputError

BACKGROUND_MASK = "_background"
REFERENCE_FOLDER = "reference"


@dataclass(frozen=True)
class Limits:
    max_frames: int = 2000
    max_edge: int = 2048
    max_characters: int = 16
    max_upload_bytes: int = 2 * 1024**3
    max_files: int = 100_000


@dataclass
class ShotPackage:
    root: pathlib.Path
    meta: dict
    frames: list[int]
    width: int
    height: int
    characters: list[dict] = field(default_factory=list)

    @property
    def shot(self) -> str:
        return self.meta["shot"]

    def path(self, kind: str, frame: int, character: str | None = None) -> pathlib.Path:
        folder = self.root / "mask" / character if character is not None else self.root / kind
        return folder / f"{frame:04d}.png"

    def has(self, kind: str) -> bool:
        return all(self.path(kind, f).is_file() for f in self.frames)

    def image(self, kind: str, frame: int) -> np.ndarray:
        """A pass as RGB uint8 (H, W, 3), or the 16-bit raw depth as (H, W) uint16."""
        return _read_png(self.path(kind, frame), (self.height, self.width))

    def grey(self, kind: str, frame: int, character: str | None = None) -> np.ndarray:
        """A pass (or, with ``character``, a mask) decoded straight to grey uint8 (H, W): no RGB copy."""
        return _decode_png(self.path(kind, frame, character=character), (self.height, self.width),
                           cv2.IMREAD_GRAYSCALE)

    def mask(self, character: str, frame: int) -> np.ndarray:
        """Where ``character`` is visible, as a bool (H, W) array."""
        pixels = _read_png(self.path("mask", frame, character=character), (self.height, self.width))
        return (pixels[..., 0] if pixels.ndim == 3 else pixels) > 127

    def reference(self, character: str, limits: Limits = Limits()) -> np.ndarray | None:
        """``character``'s reference image as RGB uint8 (H, W, 3), or None when it has none."""
        entry = next((c for c in self.characters if c.get("name") == character), None)
        if entry is None or not entry.get("reference"):
            return None
        return _read_reference(self.root, character, entry["reference"], limits.max_edge)

    @classmethod
    def load(cls, root: pathlib.Path, limits: Limits = Limits(),
             required: tuple[str, ...] = ("depth", "canny", "openpose")) -> "ShotPackage":
        root = pathlib.Path(root)
        meta = _shot_json(root)
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
        package = cls(root, meta, frames, width, height, characters)
        for kind in required:
            missing = [f for f in frames if not package.path(kind, f).is_file()]
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
            if not package.path("mask", frames[0], character=name).is_file():
                raise EngineInputError(f"the mask of {name} is missing: expected mask/{name}/{frames[0]:04d}.png.")
            package.reference(name, limits)  # decodes, and checks where it is and its size
        return package


def _shot_json(root: pathlib.Path) -> dict:
    path = root / "shot.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineInputError("the package has no shot.json: send the folder StandIn wrote for the shot.") from None
    except (OSError, ValueError) as error:
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


def _decode_png(path: pathlib.Path, size: tuple[int, int], flags: int) -> np.ndarray:
    """Read and decode one pass file with OpenCV ``flags``, checking it is there and of ``size``."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        raise EngineInputError(f"{path.parent.name}/{path.name} is missing from the package.") from None
    pixels = cv2.imdecode(data, flags) if data.size else None
    if pixels is None:
        raise EngineInputError(f"{path.parent.name}/{path.name} is not a readable PNG.")
    if pixels.shape[:2] != size:
        raise EngineInputError(
            f"{path.parent.name}/{path.name} is {pixels.shape[1]}×{pixels.shape[0]} px but shot.json says "
            f"{size[1]}×{size[0]}: all passes of a shot must have one size."
        )
    return pixels


def _read_reference(root: pathlib.Path, character: str, relative, max_edge: int) -> np.ndarray:
    """A character's reference image, checked to be a PNG under reference/ no larger than ``max_edge``."""
    parts = relative.split("/") if isinstance(relative, str) else []
    if (len(parts) != 2 or parts[0] != REFERENCE_FOLDER or parts[1] in ("", ".", "..") or "\\" in relative
            or not parts[1].lower().endswith(".png")):
        raise EngineInputError(f"character {character}: 'reference' must name a PNG in the package's "
                               f"{REFERENCE_FOLDER}/ folder (like \"{REFERENCE_FOLDER}/{character}.png\"), "
                               f"not {relative!r}.")
    try:
        data = np.fromfile(root / relative, dtype=np.uint8)
    except OSError:
        raise EngineInputError(f"character {character}: its reference image {relative} is missing from the "
                               f"package: send the whole package as StandIn writes it.") from None
    pixels = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if pixels is None:
        raise EngineInputError(f"character {character}: {relative} is not a readable PNG; "
                               f"write the shot's passes again.")
    height, width = pixels.shape[:2]
    if max(width, height) > max_edge:
        raise EngineInputError(f"character {character}: the reference image is {width}×{height} px; each side "
                               f"must be at most {max_edge} px (StandIn writes it at most 1024 px).")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _read_png(path: pathlib.Path, size: tuple[int, int]) -> np.ndarray:
    pixels = _decode_png(path, size, cv2.IMREAD_UNCHANGED)
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim == 3:
        return cv2.cvtColor(pixels[..., :3], cv2.COLOR_BGR2RGB)
    return pixels


def extract_zip(zip_path: pathlib.Path, dest: pathlib.Path, limits: Limits = Limits()) -> pathlib.Path:
    """Unpack a package zip safely; returns the folder that holds shot.json."""
    dest = pathlib.Path(dest).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise EngineInputError("the upload is not a zip file.") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_files:
            raise EngineInputError(f"the zip holds {len(entries)} files; the limit is {limits.max_files}.")
        if sum(e.file_size for e in entries) > limits.max_upload_bytes:
            raise EngineInputError("the zip unpacks to more than the upload limit.")
        for entry in entries:
            target = (dest / entry.filename).resolve()
            if not target.is_relative_to(dest) or entry.filename.startswith("/"):
                raise EngineInputError(f"zip entry {entry.filename!r} points outside the package: refused.")
        try:
            archive.extractall(dest)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError) as error:
            raise EngineInputError(f"the zip could not be unpacked ({error}): zip the package again.") from None
    found = sorted(dest.rglob("shot.json"), key=lambda p: len(p.parts))
    if not found:
        raise EngineInputError("the zip has no shot.json: zip the shot's package folder.")
    return found[0].parent
