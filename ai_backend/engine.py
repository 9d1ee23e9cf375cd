# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine interface: what the server asks of any engine, image or clip. Pure Python.

An engine turns a shot package (``package.ShotPackage``) and a ``JobSpec`` into result files in an
output folder, reporting progress and checking for cancellation between steps. Image engines write
one PNG per frame and take (``take01/0073.png``…); a clip engine (AnimateDiff, Wan VACE) writes its
frames the same way plus ``take01/clip.mp4`` — the API and the job store do not change.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

PROFILES = ("preview", "final")


class EngineInputError(ValueError):
    """The request cannot be served as asked; the message tells the user what to fix (HTTP 4xx)."""


class Cancelled(Exception):
    """Raised inside ``Engine.run`` when the job was cancelled; partial results are discarded."""


@dataclass(frozen=True)
class JobSpec:
    """What the client asks for, besides the package itself."""

    profile: str = "preview"
    seed: int = 0
    takes: int = 1
    #: scene frame numbers to generate; None = every frame of the package
    frames: tuple[int, ...] | None = None
    #: engine-specific choices by name (base model, per-control scales, sketch overlay…)
    options: dict = field(default_factory=dict)

    def check(self, max_takes: int = 16) -> None:
        if self.profile not in PROFILES:
            raise EngineInputError(f"profile must be one of {', '.join(PROFILES)}, not {self.profile!r}.")
        if not 0 <= self.seed < 2**32:
            raise EngineInputError("seed must be a whole number from 0 to 4294967295.")
        if not 1 <= self.takes <= max_takes:
            raise EngineInputError(f"takes must be between 1 and {max_takes}.")


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    frame: int | None = None
    message: str = ""


#: Called by engines as they work; raises ``Cancelled`` when the job was cancelled.
ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ResultFile:
    """One file an engine wrote, relative to the job's output folder."""

    path: str
    take: int
    frame: int | None
    kind: str  # "frame" | "clip" | "plate"


class Engine(Protocol):
    #: short name, as in ``--engine``
    name: str
    #: "image" (one picture per frame) or "clip" (a moving shot at once)
    kind: str

    def describe(self) -> dict:
        """Device, library versions and what the engine can do (for /v1/health)."""

    def check(self, package, spec: JobSpec) -> None:
        """Raise ``EngineInputError`` for a request this engine cannot serve (unknown model, missing pass…)."""

    def run(self, package, spec: JobSpec, out_dir: pathlib.Path, progress: ProgressCallback) -> list[ResultFile]:
        """Generate into ``out_dir`` (a staging folder the caller commits); return what was written."""


def frames_of(package, spec: JobSpec) -> list[int]:
    """The frames a job covers, checked against the package."""
    if spec.frames is None:
        return list(package.frames)
    missing = [f for f in spec.frames if f not in package.frames]
    if missing:
        raise EngineInputError(
            f"frames {missing[:5]} are not in the package (it has {package.frames[0]}–{package.frames[-1]})."
        )
    return sorted(set(spec.frames))


def take_folder(take: int) -> str:
    return f"take{take:02d}"
