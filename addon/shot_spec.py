# SPDX-License-Identifier: GPL-3.0-or-later
"""ShotSpec: everything a shot's passes and its generation need, as plain JSON-able data. Pure Python.

``scene_reader`` fills it from Blender; ``pass_pipeline`` renders from it; ``shot.json`` is its
serialised form plus what the render found (depth range, characters in view). Two hashes:
``render_hash`` covers what changes pixels (camera per frame, geometry, resolution, thresholds) and
decides whether passes are rendered again; ``content_hash`` covers everything (prompts too).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

#: Bump when the pass images change for the same inputs, so old packages are rendered again.
PASSES_VERSION = 1

Matrix4 = list[list[float]]


@dataclass
class CameraIntrinsics:
    lens_mm: float
    sensor_width_mm: float
    sensor_height_mm: float
    sensor_fit: str
    shift_x: float
    shift_y: float
    clip_start: float
    clip_end: float


@dataclass
class CharacterSpec:
    name: str
    pass_index: int
    color: list[float]
    prompt: str
    lora_file: str
    lora_trigger: str
    lora_weight: float
    reference_image: str
    #: frame (as str, for JSON) → the 18 COCO joints in world space, in COCO order
    joints: dict[str, list[list[float]]] = field(default_factory=dict)


@dataclass
class SetSpec:
    name: str
    prompt: str
    seed: int
    time_of_day: str


@dataclass
class ShotSpec:
    shot: str
    frame_start: int
    frame_end: int
    fps: float
    width: int
    height: int
    camera: CameraIntrinsics
    #: frame (as str) → camera world matrix (4×4, row-major) and lens (zooms animate it)
    camera_matrices: dict[str, Matrix4]
    camera_lens: dict[str, float]
    characters: list[CharacterSpec]
    set: SetSpec | None
    #: sun direction (unit vector the light travels along) in camera space at the first frame, or None
    sun_direction_camera: list[float] | None
    style_prompt: str
    negative_prompt: str
    action: str
    shot_size: str
    canny_low: int
    canny_high: int
    #: per-frame fingerprint of everything visible to the render (objects, poses, meshes)
    geometry_fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def frames(self) -> range:
        return range(self.frame_start, self.frame_end + 1)

    def camera_is_static(self) -> bool:
        first = self.camera_matrices[str(self.frame_start)]
        lens = self.camera_lens[str(self.frame_start)]
        return all(self.camera_matrices[str(f)] == first and self.camera_lens[str(f)] == lens for f in self.frames)

    def to_dict(self) -> dict:
        return asdict(self)

    def render_hash(self) -> str:
        """Hash of what decides the pass pixels (not prompts or names of things)."""
        keyed = {
            "version": PASSES_VERSION,
            "frames": [self.frame_start, self.frame_end],
            "size": [self.width, self.height],
            "camera": asdict(self.camera),
            "camera_matrices": self.camera_matrices,
            "camera_lens": self.camera_lens,
            "characters": [(c.name, c.pass_index, c.joints) for c in self.characters],
            "geometry": self.geometry_fingerprint,
            "canny": [self.canny_low, self.canny_high],
        }
        return _digest(keyed)

    def content_hash(self) -> str:
        """Hash of everything that went into the shot package."""
        return _digest(self.to_dict())

    def generation_hash(self) -> str:
        """Hash of what a generated frame depends on: everything but the shot's name and the reader's
        warnings, so renaming a shot does not make its takes out of date."""
        data = self.to_dict()
        data.pop("shot")
        data.pop("warnings")
        return _digest(data)


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_not_json)
    return hashlib.sha256(text.encode()).hexdigest()


def _not_json(value):
    raise TypeError(f"not JSON-able: {type(value).__name__}")
