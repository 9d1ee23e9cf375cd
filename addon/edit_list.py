# SPDX-License-Identifier: GPL-3.0-or-later
"""The animatic's edit decisions, from plain shot data. Pure Python (no bpy).

Every shot plays in list order at its own length: its *record* range (where it sits in the cut)
follows the shot before it; its *source* range is its scene frames. What each shot shows:

- ``frames``    the active take's frames (``0001.png``… by scene frame), one file per shot frame;
- ``still``     a take of one frame, held for the shot's duration;
- ``clip``      the take's ``clip.mp4`` when it has no frame files;
- ``playblast`` no take: a fast render of the blocking, cached under ``<cache>/<shot>-<key>/``;
- ``slate``     no picture at all (take media gone, no camera): a "MISSING — <shot>" slate.

Bad input never stops the cut: a shot of zero length is left out, overlapping ranges are built as
they are (the action plays in both shots), missing media gets a slate; each is one sentence in
``EditList.problems``. ``key`` is a hash of everything that decides a shot's pixels in the cut, so a
rebuild renders again only the shots whose key changed.

Timecodes are SMPTE non-drop-frame; 23.976 and 29.97 count 24 and 30 frames a "second", as editors
expect (the record timecode of the cut starts at 00:00:00:00 on its first frame).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction

#: Bumped when what the key covers or how a piece looks changes, so old caches are not taken for current ones.
EDIT_VERSION = 2

KINDS = ("frames", "still", "clip", "playblast", "slate")
#: How playblast frames are named in their cache folder: ``0001.jpg``… by scene frame.
PLAYBLAST_SUFFIX = ".jpg"


@dataclass(frozen=True)
class Rate:
    """A frame rate as an exact fraction: 24/1, 24000/1001 (23.976), 30000/1001 (29.97)…"""

    numerator: int
    denominator: int = 1

    @classmethod
    def from_blender(cls, fps: int, fps_base: float) -> "Rate":
        """From ``scene.render.fps`` / ``fps_base`` (Blender stores 23.976 as 24 / 1.001)."""
        if fps <= 0 or fps_base <= 0:
            raise ValueError(f"frame rate {fps}/{fps_base} is not a frame rate")
        if abs(fps_base - 1.0) < 1e-9:
            return cls(int(fps), 1)
        if abs(fps_base - 1.001) < 1e-6:
            return cls(int(fps) * 1000, 1001)
        exact = Fraction(fps) / Fraction(fps_base).limit_denominator(100000)
        exact = exact.limit_denominator(1001)
        return cls(exact.numerator, exact.denominator)

    @property
    def fps(self) -> float:
        return self.numerator / self.denominator

    @property
    def nominal(self) -> int:
        """Frames per timecode second: 24 for 23.976, 30 for 29.97."""
        return max(1, round(self.fps))

    def seconds(self, frames: int) -> float:
        return frames * self.denominator / self.numerator

    def label(self) -> str:
        if self.denominator == 1:
            return f"{self.numerator} fps"
        return f"{self.fps:.3f} fps ({self.numerator}/{self.denominator})"


def timecode(frames: int, rate: Rate) -> str:
    """SMPTE non-drop timecode HH:MM:SS:FF of a 0-based frame count."""
    if frames < 0:
        raise ValueError("timecode of a negative frame count")
    per_second = rate.nominal
    seconds, ff = divmod(frames, per_second)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


def running_time(frames: int, rate: Rate) -> str:
    """A person's reading of a duration: ``7.5 s``, ``1 min 07 s``, ``1 h 02 min 05 s``."""
    seconds = rate.seconds(frames)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


# --- inputs ------------------------------------------------------------------------------


@dataclass
class TakeInput:
    """The active take of a shot, as found on disk (``frames``: scene frame → file)."""

    name: str
    folder: str
    frames: dict[int, str] = field(default_factory=dict)
    clip: str = ""
    seed: int = 0
    prompt: str = ""
    prompts: dict = field(default_factory=dict)
    loras: list = field(default_factory=list)
    engine: str = ""
    model: str = ""
    profile: str = ""
    created: str = ""
    #: why the take cannot be used when it was recorded on the shot but is not on disk
    problem: str = ""


@dataclass
class ShotInput:
    """What the edit needs to know of a shot; the bpy side reads it from ``scene.standin.shots``."""

    name: str
    frame_start: int
    frame_end: int
    lens: float = 0.0
    size: str = ""
    size_label: str = ""
    action: str = ""
    notes: str = ""
    take: TakeInput | None = None
    #: hash of the blocking the playblast shows ('' when the shot cannot be playblasted)
    playblast_key: str = ""
    #: why the shot cannot be playblasted (its camera was deleted…), '' when it can
    playblast_problem: str = ""

    @property
    def duration(self) -> int:
        return self.frame_end - self.frame_start + 1


@dataclass
class SoundInput:
    """A sound strip of the source scene: the file, where its first sample sits (``frame_start``,
    in scene frames) and the part of it that plays (``play_start`` to ``play_end``, exclusive)."""

    name: str
    filepath: str
    frame_start: float
    play_start: int
    play_end: int
    volume: float = 1.0


# --- outputs -----------------------------------------------------------------------------


@dataclass
class Source:
    kind: str
    #: one file per shot frame (frames, still), the clip file (clip), or nothing
    files: list[str] = field(default_factory=list)
    clip: str = ""
    #: the folder holding the pictures (take folder or playblast cache folder)
    folder: str = ""
    #: what to say about it on a slate or in a report
    reason: str = ""


@dataclass
class Event:
    """One shot in the cut. Record frames are the edit scene's; ``record_out`` is exclusive."""

    number: int
    shot: str
    record_in: int
    record_out: int
    source_in: int
    source_out: int
    source: Source
    lens: float
    size: str
    size_label: str
    action: str
    notes: str
    take: TakeInput | None
    key: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> int:
        return self.record_out - self.record_in

    @property
    def take_name(self) -> str:
        return self.take.name if self.take is not None and self.source.kind in ("frames", "still", "clip") else ""

    @property
    def label(self) -> str:
        """What the burn-in says the picture is: the take, ``blocking`` (playblast) or ``MISSING``."""
        return self.take_name or ("MISSING" if self.source.kind == "slate" else "blocking")

    def burn_in(self, record_frame: int, rate: Rate, start_frame: int) -> str:
        """The burn-in line at ``record_frame``: shot, take, lens, size, timecode, frame counters."""
        return burn_in_text(self.shot, self.label, self.lens, self.size, record_frame, self.record_in,
                            self.record_out, rate, start_frame)


def burn_in_text(shot: str, label: str, lens: float, size: str, record_frame: int, record_in: int,
                 record_out: int, rate: Rate, start_frame: int) -> str:
    """``SQ010_SH0020  v001  35mm  MS  |  00:00:03:05  |  0078  (6/60)``: record timecode, record
    frame, and the frame within the shot."""
    parts = [shot, label] + ([f"{lens:g}mm"] if lens else []) + ([size] if size else [])
    return (f"{'  '.join(parts)}  |  {timecode(record_frame - start_frame, rate)}  |  {record_frame:04d}  "
            f"({record_frame - record_in + 1}/{record_out - record_in})")


@dataclass
class SoundSegment:
    """A piece of a source sound laid in the cut: ``length`` frames from ``offset`` frames into the
    file, starting at edit frame ``record_in``."""

    sound: SoundInput
    record_in: int
    offset: int
    length: int

    @property
    def record_out(self) -> int:
        return self.record_in + self.length


@dataclass
class EditList:
    rate: Rate
    width: int
    height: int
    start_frame: int
    events: list[Event]
    sound: list[SoundSegment]
    problems: list[str]

    @property
    def total_frames(self) -> int:
        return sum(e.duration for e in self.events)

    @property
    def end_frame(self) -> int:
        """Last edit frame (inclusive); ``start_frame - 1`` for an empty cut."""
        return self.start_frame + self.total_frames - 1

    @property
    def running_time(self) -> str:
        return running_time(self.total_frames, self.rate)

    @property
    def total_timecode(self) -> str:
        return timecode(self.total_frames, self.rate)

    def event_at(self, record_frame: int) -> Event | None:
        for event in self.events:
            if event.record_in <= record_frame < event.record_out:
                return event
        return None

    def burn_in(self, record_frame: int) -> str:
        event = self.event_at(record_frame)
        return event.burn_in(record_frame, self.rate, self.start_frame) if event else ""

    def burn_in_table(self) -> list[dict]:
        """What a render handler needs to write every frame's burn-in, as JSON-able rows."""
        return [{"in": e.record_in, "out": e.record_out, "shot": e.shot, "label": e.label, "lens": e.lens,
                 "size": e.size} for e in self.events]


def burn_in_from_table(rows: list[dict], record_frame: int, rate: Rate, start_frame: int) -> str:
    """``EditList.burn_in`` from ``burn_in_table`` rows (what the edit scene keeps)."""
    for row in rows:
        if row["in"] <= record_frame < row["out"]:
            return burn_in_text(row["shot"], row["label"], row["lens"], row["size"], record_frame, row["in"],
                                row["out"], rate, start_frame)
    return ""


# --- building ----------------------------------------------------------------------------


def _frame_for(available: list[int], frame: int) -> int:
    """The take frame shown at scene ``frame``: itself, else the last one before (held), else the first."""
    before = [f for f in available if f <= frame]
    return before[-1] if before else available[0]


def _take_source(shot: ShotInput, warnings: list[str]) -> Source:
    take = shot.take
    if take.problem:
        return Source("slate", reason=take.problem)
    if take.frames:
        available = sorted(take.frames)
        if len(available) == 1:
            return Source("still", [take.frames[available[0]]] * shot.duration, folder=take.folder)
        shot_frames = range(shot.frame_start, shot.frame_end + 1)
        if not any(shot.frame_start <= f <= shot.frame_end for f in available):
            # made for another range (the shot moved since): lay its frames in order
            warnings.append(f"{shot.name}: take {take.name} was made for frames {available[0]}–{available[-1]}, "
                            f"the shot is now {shot.frame_start}–{shot.frame_end}; its frames are laid in order.")
            files = [take.frames[available[min(i, len(available) - 1)]] for i in range(shot.duration)]
        else:
            files = [take.frames[_frame_for(available, f)] for f in shot_frames]
            missing = [f for f in shot_frames if f not in take.frames]
            if missing:
                warnings.append(f"{shot.name}: take {take.name} has no frame for {len(missing)} of the shot's "
                                f"{shot.duration} frames; the nearest earlier frame is held.")
        return Source("frames", files, folder=take.folder)
    if take.clip:
        return Source("clip", clip=take.clip, folder=take.folder)
    return Source("slate", reason=f"{shot.name}: take {take.name} has no frames or clip in {take.folder}.")


def _source_for(shot: ShotInput, cache_dir: str, warnings: list[str]) -> Source:
    if shot.take is not None:
        return _take_source(shot, warnings)
    if shot.playblast_problem or not shot.playblast_key:
        return Source("slate", reason=shot.playblast_problem or f"{shot.name}: nothing to show.")
    folder = os.path.join(cache_dir, f"{shot.name}-{shot.playblast_key[:16]}") if cache_dir else ""
    files = [os.path.join(folder, f"{frame:04d}{PLAYBLAST_SUFFIX}")
             for frame in range(shot.frame_start, shot.frame_end + 1)]
    return Source("playblast", files, folder=folder)


def file_stamp(path: str) -> list:
    try:
        stat = os.stat(path)
    except OSError:
        return [path, None]
    return [path, stat.st_size, stat.st_mtime_ns]


def media_key(shot: ShotInput, source: Source, width: int, height: int) -> str:
    """Hash of what decides a shot's pictures in the cut (not where it sits in it)."""
    keyed: dict = {"version": EDIT_VERSION, "kind": source.kind, "shot": shot.name, "size": [width, height],
                   "range": [shot.frame_start, shot.frame_end]}
    if source.kind in ("frames", "still"):
        keyed["files"] = [file_stamp(path) for path in sorted(set(source.files))]
        keyed["order"] = [os.path.basename(path) for path in source.files]
    elif source.kind == "clip":
        keyed["clip"] = file_stamp(source.clip)
    elif source.kind == "playblast":
        keyed["blocking"] = shot.playblast_key
    else:
        keyed["reason"] = source.reason
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _overlap_problems(kept: list[ShotInput]) -> list[str]:
    problems = []
    by_start = sorted(kept, key=lambda s: (s.frame_start, s.frame_end))
    for i, first in enumerate(by_start):
        for second in by_start[i + 1:]:
            if second.frame_start > first.frame_end:
                break
            low, high = second.frame_start, min(first.frame_end, second.frame_end)
            problems.append(f"{first.name} (frames {first.frame_start}–{first.frame_end}) and {second.name} "
                            f"(frames {second.frame_start}–{second.frame_end}) overlap on frames {low}–{high}: "
                            f"that action plays in both shots of the animatic.")
    return problems


def _sound_segments(events: list[Event], sounds: list[SoundInput]) -> list[SoundSegment]:
    """Each shot's own stretch of every sound, laid under the shot: picture and sound stay in sync
    even when the cut reorders, repeats or skips scene frames. Stretches that continue one another
    in both the cut and the file are joined into one segment."""
    segments: list[SoundSegment] = []
    for event in events:
        for sound in sounds:
            low = max(event.source_in, sound.play_start)
            high = min(event.source_out, sound.play_end)
            if high <= low:
                continue
            record_in = event.record_in + (low - event.source_in)
            offset = int(round(low - sound.frame_start))
            previous = next((s for s in reversed(segments) if s.sound is sound), None)
            if previous is not None and previous.record_out == record_in and \
                    previous.offset + previous.length == offset:
                previous.length += high - low
            else:
                segments.append(SoundSegment(sound, record_in, offset, high - low))
    return sorted(segments, key=lambda s: (s.record_in, s.sound.name))


def build(shots: list[ShotInput], rate: Rate, width: int, height: int, sounds: list[SoundInput] = (),
          cache_dir: str | os.PathLike = "", start_frame: int = 1) -> EditList:
    """The cut of ``shots`` in list order; never raises for bad shots (see ``problems``)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"animatic size {width}×{height} is not a picture size")
    problems: list[str] = []
    seen: set[str] = set()
    kept: list[ShotInput] = []
    for shot in shots:
        if shot.name in seen:
            problems.append(f"Two shots are named {shot.name}: the second is left out of the animatic; rename it.")
            continue
        seen.add(shot.name)
        if shot.duration <= 0:
            problems.append(f"{shot.name} has no frames (it ends at frame {shot.frame_end}, before it starts at "
                            f"{shot.frame_start}): it is left out of the animatic; fix its range in the Shots panel.")
            continue
        kept.append(shot)
    problems += _overlap_problems(kept)

    events: list[Event] = []
    record = start_frame
    for number, shot in enumerate(kept, start=1):
        warnings: list[str] = []
        source = _source_for(shot, str(cache_dir), warnings)
        if source.kind == "slate":
            problems.append(f"MISSING — {shot.name}: {source.reason.removeprefix(shot.name + ': ')} "
                            f"A slate stands in for it.")
        problems += warnings
        event = Event(number, shot.name, record, record + shot.duration, shot.frame_start, shot.frame_end + 1,
                      source, shot.lens, shot.size, shot.size_label, shot.action, shot.notes, shot.take,
                      key=media_key(shot, source, width, height), warnings=warnings)
        events.append(event)
        record += shot.duration
    return EditList(rate, width, height, start_frame, events, _sound_segments(events, list(sounds)), problems)


def make_slate(edit: EditList, event: Event, reason: str) -> None:
    """The shot's picture could not be made after all (its playblast failed): a slate stands in."""
    event.source = Source("slate", reason=reason)
    text = json.dumps({"version": EDIT_VERSION, "kind": "slate", "shot": event.shot, "reason": reason,
                       "size": [edit.width, edit.height]}, sort_keys=True)
    event.key = hashlib.sha256(text.encode()).hexdigest()
    edit.problems.append(f"MISSING — {event.shot}: {reason.removeprefix(event.shot + ': ')} "
                         f"A slate stands in for it.")


def segment_key(edit: EditList, event: Event, extra: dict | None = None) -> str:
    """Hash of one shot's stretch of the encoded cut: its pictures, where it sits (the burn-ins show
    record timecode) and the picture format. ``extra``: encoder settings."""
    keyed = {"version": EDIT_VERSION, "media": event.key, "record": [event.record_in, event.record_out],
             "start": edit.start_frame, "rate": [edit.rate.numerator, edit.rate.denominator],
             "size": [edit.width, edit.height], "burn_in": [event.burn_in(event.record_in, edit.rate, edit.start_frame),
                                                            event.number], "extra": extra or {}}
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def summary(edit: EditList) -> dict:
    """The cut as JSON-able data (for reports and the edit scene's record)."""
    return {
        "rate": [edit.rate.numerator, edit.rate.denominator],
        "size": [edit.width, edit.height],
        "start_frame": edit.start_frame,
        "total_frames": edit.total_frames,
        "running_time": edit.running_time,
        "events": [{"shot": e.shot, "record": [e.record_in, e.record_out], "source": [e.source_in, e.source_out],
                    "kind": e.source.kind, "take": e.take_name, "key": e.key} for e in edit.events],
        "sound": [{"file": s.sound.filepath, "record_in": s.record_in, "offset": s.offset, "length": s.length}
                  for s in edit.sound],
        "problems": list(edit.problems),
    }


def even(value: float) -> int:
    """The nearest even pixel count ≥ 2 (H.264 in 4:2:0 needs even sides)."""
    return max(2, int(round(value / 2.0)) * 2)


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The animatic's picture size for ``scale`` of the project resolution (the aspect is kept)."""
    if not 0.05 <= scale <= 1.0:
        raise ValueError(f"animatic scale {scale} is out of range: use a value between 0.05 and 1.")
    return even(width * scale), even(height * scale)

