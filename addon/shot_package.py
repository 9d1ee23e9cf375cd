# SPDX-License-Identifier: GPL-3.0-or-later
"""The shot package on disk: ``shot.json`` + one folder per pass, files ``0001.png``… by frame. Pure.

Written atomically: everything goes into a hidden staging folder beside the package, ``shot.json``
last, and the finished folder is swapped in with renames. An interrupted run leaves only a staging
folder (removed by the next run), never a package that looks complete. A package is complete when
its ``shot.json`` says ``"complete": true``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import uuid

import cv2
import numpy as np

SHOT_JSON = "shot.json"
PASS_FOLDERS = ("depth", "depth_raw", "canny", "openpose", "pose", "depth_bg", "canny_bg")
MASK_FOLDER = "mask"
_STAGING_PREFIX = ".staging-"
_RETIRED_PREFIX = ".retired-"


class PackageError(Exception):
    """The package cannot be written; the message says what to do."""


def frame_file(frame: int, suffix: str = ".png") -> str:
    return f"{frame:04d}{suffix}"


def read_shot_json(package_dir: pathlib.Path) -> dict | None:
    """The package's shot.json when the package is complete, else None."""
    try:
        data = json.loads((pathlib.Path(package_dir) / SHOT_JSON).read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("complete") is True else None


def freshness(package_dir: pathlib.Path, render_hash: str, content_hash: str) -> str:
    """``"current"`` (nothing to do), ``"metadata"`` (pixels unchanged, shot.json outdated) or ``"stale"``."""
    data = read_shot_json(package_dir)
    if data is None or data.get("render_hash") != render_hash:
        return "stale"
    return "current" if data.get("content_hash") == content_hash else "metadata"


def _write_json_atomically(path: pathlib.Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)


def update_metadata(package_dir: pathlib.Path, changes: dict) -> dict:
    """Rewrite a complete package's shot.json with ``changes`` (prompts, names): no render needed."""
    data = read_shot_json(package_dir)
    if data is None:
        raise PackageError(f"{package_dir} holds no complete shot package.")
    data.update(changes)
    _write_json_atomically(pathlib.Path(package_dir) / SHOT_JSON, data)
    return data


def _ensure_writable(folder: pathlib.Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PackageError(
            f"Cannot write to {folder} ({error.strerror or error}): pick an output folder you can write to."
        ) from error


class StagedPackage:
    """Build a package in a staging folder; ``commit`` swaps it in, ``discard`` throws it away."""

    def __init__(self, package_dir: pathlib.Path):
        self.package_dir = pathlib.Path(package_dir)
        parent = self.package_dir.parent
        _ensure_writable(parent)
        for leftover in parent.glob(f"{_STAGING_PREFIX}{self.package_dir.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.staging = parent / f"{_STAGING_PREFIX}{self.package_dir.name}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        self._made: set[pathlib.Path] = set()

    def _folder(self, *parts: str) -> pathlib.Path:
        folder = self.staging.joinpath(*parts)
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return folder

    def path(self, kind: str, frame: int, suffix: str = ".png", character: str | None = None) -> pathlib.Path:
        folder = self._folder(MASK_FOLDER, character) if character is not None else self._folder(kind)
        return folder / frame_file(frame, suffix)

    def write_image(self, kind: str, frame: int, image: np.ndarray, character: str | None = None) -> pathlib.Path:
        """Write a PNG: (H, W) grey or uint16, or (H, W, 3) RGB."""
        path = self.path(kind, frame, character=character)
        pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        if not cv2.imwrite(str(path), pixels):
            raise PackageError(f"Could not write {path}: is the disk full?")
        return path

    def copy_image(self, kind: str, source_frame: int, frame: int) -> None:
        shutil.copyfile(self.path(kind, source_frame), self.path(kind, frame))

    def write_json(self, kind: str, frame: int, data: dict) -> pathlib.Path:
        path = self.path(kind, frame, suffix=".json")
        path.write_text(json.dumps(data))
        return path

    def commit(self, shot_json: dict) -> pathlib.Path:
        """Write shot.json (complete) last, then swap the staging folder in place of the package."""
        (self.staging / SHOT_JSON).write_text(json.dumps({**shot_json, "complete": True}, indent=1, sort_keys=True))
        retired = None
        if self.package_dir.exists():
            retired = self.package_dir.with_name(f"{_RETIRED_PREFIX}{self.package_dir.name}-{uuid.uuid4().hex[:8]}")
            os.rename(self.package_dir, retired)
        os.rename(self.staging, self.package_dir)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        return self.package_dir

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
