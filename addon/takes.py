# SPDX-License-Identifier: GPL-3.0-or-later
"""Takes on disk: ``<output>/<shot>/v001/``, ``v002/``… Pure Python (no bpy).

A take folder holds the generated frames by scene frame number (``0001.png``…), a clip when the
engine made one (``clip.mp4``) and ``take.json``, written last. A take is complete when its
``take.json`` says ``"complete": true``; a take is built in a hidden staging folder and renamed
into place, so an interrupted download never looks like a take. Numbers are never reused: the
next take is one past the highest ``vNNN`` folder (complete or not) in the shot's folder.

``inputs_hash`` is what "generate all" compares: the package's content hash (passes, prompts,
cast LoRAs, set seed) plus the job's seed, profile, engine and options. A shot whose active take
has the same inputs hash is up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field

TAKE_JSON = "take.json"
CLIP_FILE = "clip.mp4"
_TAKE_NAME = re.compile(r"^v(\d{3,})$")
_STAGING_PREFIX = ".staging-"
_FRAME_FILE = re.compile(r"^(\d{4,})\.png$")


class TakeError(Exception):
    """A take cannot be written or read; the message says what to do."""


def take_name(number: int) -> str:
    if number < 1:
        raise ValueError("take numbers start at 1")
    return f"v{number:03d}"


def take_number(name: str) -> int | None:
    """``"v012"`` → 12; anything else → None."""
    match = _TAKE_NAME.match(name)
    return int(match.group(1)) if match else None


def inputs_hash(content_hash: str, seed: int, profile: str, engine: str, options: dict | None = None) -> str:
    """What decides a take's pixels: the shot package's content hash and the job's own choices."""
    keyed = {"package": content_hash, "seed": int(seed), "profile": profile, "engine": engine,
             "options": options or {}}
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TakeRecord:
    """What ``take.json`` holds: where a take came from, enough to make it again."""

    name: str
    shot: str
    seed: int
    profile: str
    engine: str
    model: str = ""
    loras: list[dict] = field(default_factory=list)
    prompts: dict = field(default_factory=dict)
    created: str = ""
    job_id: str = ""
    backend: str = ""
    inputs_hash: str = ""
    #: scene frame numbers with a frame file, sorted
    frames: list[int] = field(default_factory=list)
    #: ``clip.mp4`` when the engine made a clip, else ""
    clip: str = ""
    #: frames per second of the shot when it was generated
    fps: float = 24.0
    width: int = 0
    height: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TakeRecord":
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def frame_file(frame: int) -> str:
    return f"{frame:04d}.png"


def frame_files(folder: pathlib.Path) -> dict[int, pathlib.Path]:
    """The frame PNGs of a take folder, by scene frame number."""
    found = {}
    for path in pathlib.Path(folder).iterdir():
        match = _FRAME_FILE.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def read_take(folder: pathlib.Path) -> TakeRecord | None:
    """The take in ``folder`` when it is complete, else None."""
    try:
        data = json.loads((pathlib.Path(folder) / TAKE_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("complete") is not True:
        return None
    try:
        return TakeRecord.from_dict(data)
    except TypeError:
        return None


def take_folders(shot_dir: pathlib.Path) -> list[pathlib.Path]:
    """Every ``vNNN`` folder of a shot, complete or not, by number."""
    shot_dir = pathlib.Path(shot_dir)
    if not shot_dir.is_dir():
        return []
    numbered = [(take_number(p.name), p) for p in shot_dir.iterdir() if p.is_dir()]
    return [p for n, p in sorted((n, p) for n, p in numbered if n is not None)]


def complete_takes(shot_dir: pathlib.Path) -> list[tuple[pathlib.Path, TakeRecord]]:
    return [(folder, record) for folder in take_folders(shot_dir) if (record := read_take(folder)) is not None]


def next_take_number(shot_dir: pathlib.Path) -> int:
    folders = take_folders(shot_dir)
    return (take_number(folders[-1].name) + 1) if folders else 1


class StagedTake:
    """Build a take in a hidden staging folder; ``commit`` names it ``vNNN`` and writes take.json last."""

    def __init__(self, shot_dir: pathlib.Path):
        self.shot_dir = pathlib.Path(shot_dir)
        try:
            self.shot_dir.mkdir(parents=True, exist_ok=True)
            self.folder = self.shot_dir / f"{_STAGING_PREFIX}take-{uuid.uuid4().hex[:12]}"
            self.folder.mkdir()
        except OSError as error:
            raise TakeError(f"Cannot write takes into {self.shot_dir} ({error.strerror or error}): "
                            f"save the .blend somewhere you can write, or pick another output folder.") from error

    def path(self, relative: str) -> pathlib.Path:
        target = (self.folder / relative).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            raise TakeError(f"refusing to write {relative!r} outside the take folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self, record: TakeRecord) -> pathlib.Path:
        """Number the take, write take.json (complete) and rename the folder into place."""
        frames = frame_files(self.folder)
        if not frames and not (self.folder / CLIP_FILE).is_file():
            raise TakeError("the take has no frames: nothing was recorded.")
        for _ in range(100):
            number = next_take_number(self.shot_dir)
            record.name = take_name(number)
            record.frames = list(frames)
            record.clip = CLIP_FILE if (self.folder / CLIP_FILE).is_file() else ""
            (self.folder / TAKE_JSON).write_text(json.dumps({**record.to_dict(), "complete": True}, indent=1,
                                                            sort_keys=True))
            target = self.shot_dir / record.name
            try:
                os.rename(self.folder, target)  # fails if another writer took the number first
            except OSError:
                if target.exists():
                    continue
                raise
            return target
        raise TakeError(f"could not find a free take number in {self.shot_dir}.")

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if self.folder.exists():
            self.discard()
        return False

