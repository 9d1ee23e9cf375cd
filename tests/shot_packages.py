# SPDX-License-Identifier: GPL-3.0-or-later
"""Shot packages in the exact layout StandIn writes, made without Blender (for backend tests).

``make_package`` draws synthetic passes: a depth ramp with a near box per character, canny edges of
those boxes, an OpenPose skeleton per character (with StandIn's own drawing code) and rectangular
masks, so engines and the server can be tested on packages whose content is known.
"""

import json
import pathlib

import cv2
import numpy as np

from standin.addon import openpose

CHARACTERS = (
    {"name": "Mara", "pass_index": 1, "color": [0.85, 0.25, 0.2, 1.0], "prompt": "woman in a red raincoat",
     "lora_file": "", "lora_trigger": "", "lora_weight": 0.8, "reference_image": ""},
    {"name": "Theo", "pass_index": 2, "color": [0.2, 0.45, 0.85, 1.0], "prompt": "young man, denim jacket",
     "lora_file": "", "lora_trigger": "", "lora_weight": 0.8, "reference_image": ""},
)


def character_box(index: int, width: int, height: int, frame_offset: int = 0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the n-th character's rectangle (moves right one pixel a frame)."""
    x0 = width // 8 + index * width // 2 + frame_offset
    return x0, height // 4, x0 + width // 4, height - height // 8


def _write(path: pathlib.Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), pixels)


def write_package(root: pathlib.Path, frames: int = 3, width: int = 64, height: int = 48, frame_start: int = 1,
                  characters=CHARACTERS) -> pathlib.Path:
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for offset, frame in enumerate(range(frame_start, frame_start + frames)):
        name = f"{frame:04d}.png"
        ramp = np.tile(np.linspace(40, 120, height, dtype=np.uint8)[:, None], (1, width))
        depth, edges = ramp.copy(), np.zeros((height, width), np.uint8)
        background = np.full((height, width), 255, np.uint8)
        people = []
        for index, character in enumerate(characters):
            x0, y0, x1, y1 = character_box(index, width, height, offset)
            depth[y0:y1, x0:x1] = 220
            cv2.rectangle(edges, (x0, y0), (x1 - 1, y1 - 1), 255, 1)
            mask = np.zeros((height, width), np.uint8)
            mask[y0:y1, x0:x1] = 255
            background[y0:y1, x0:x1] = 0
            _write(root / "mask" / character["name"] / name, mask)
            cx = (x0 + x1) / 2
            joints = [(cx, y0 + 2.0), (cx, y0 + 6.0)] + [None] * 16
            people.append(joints)
        _write(root / "mask" / "_background" / name, background)
        _write(root / "depth" / name, np.repeat(depth[..., None], 3, axis=2))
        _write(root / "depth_bg" / name, np.repeat(ramp[..., None], 3, axis=2))
        _write(root / "depth_raw" / name, (depth.astype(np.uint16) * 10))
        _write(root / "canny" / name, edges)
        _write(root / "canny_bg" / name, np.zeros((height, width), np.uint8))
        _write(root / "openpose" / name, openpose.draw_pose(height, width, people))
        (root / "pose").mkdir(exist_ok=True)
        (root / "pose" / f"{frame:04d}.json").write_text(json.dumps(openpose.pose_json(people, width, height)))
    meta = {
        "complete": True, "shot": "SQ010_SH0010", "frame_start": frame_start, "frame_end": frame_start + frames - 1,
        "fps": 24.0, "width": width, "height": height, "characters": list(characters),
        "set": {"name": "Kitchen", "prompt": "small kitchen at night", "seed": 1234, "time_of_day": "NIGHT"},
        "style_prompt": "pencil storyboard frame", "negative_prompt": "blurry", "action": "they talk",
        "shot_size": "MS", "camera_matrices": {str(f): [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]
                                               for f in range(frame_start, frame_start + frames)},
        "render_hash": "r" * 64, "content_hash": "c" * 64,
    }
    (root / "shot.json").write_text(json.dumps(meta, indent=1))
    return root
