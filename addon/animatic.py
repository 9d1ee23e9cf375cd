# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the animatic: the "StandIn Edit" scene in the Video Sequence Editor, encoded to an MP4.

The steps, each a plain function (``build`` strings them together as a generator, one frame or one
shot per step, so the operator can show progress and Esc can stop it):

1. read the shots, their active takes and the scene's sound strips (``read_shots``, ``read_sounds``)
   and let ``edit_list.build`` decide the cut (pure Python);
2. playblast the blocking of every shot without a take (``playblast``), cached by a hash of the
   blocking under ``<output>/animatic/cache/<shot>-<key>/``;
3. fill the edit scene: one strip per shot in shot order, a slate for a shot without picture, the
   sound cut shot by shot so it stays in sync with the picture; burn-ins are Blender's metadata
   stamp, its note rewritten for every frame by a render handler from the cut;
4. encode each shot's stretch of the cut into its own MP4 (cached: a rebuild after one shot changed
   encodes only that one), the sound once over the whole cut, and join them by a stream copy
   (``mp4_join``) into the animatic, written under a temporary name and renamed when complete.
   Should the pieces not join (a broken file in the cache), they are forgotten and the whole cut is
   encoded in one go instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Generator

import bpy

from . import edit_list, formats, framing, mp4_join, playblast, project_paths, shots, takes
from .edit_list import EditList, Event, Rate, ShotInput, SoundInput, TakeInput

EDIT_SCENE = "StandIn Edit"
#: The animatic's size against the project resolution.
DEFAULT_SCALE = 0.5
#: What decides the encoded pictures besides the cut; part of every segment's cache key.
ENCODER = {"container": "MPEG4", "codec": "H264", "crf": "MEDIUM", "preset": "REALTIME", "b_frames": 0,
           "stamp": 1, "view": "Standard", "version": 1}
AUDIO = {"codec": "AAC", "bitrate": 192, "mixrate": 48000, "channels": "STEREO"}
SLATE_COLOR = (0.12, 0.12, 0.13, 1.0)
_BURN_IN_PROP = "standin_burn_in"


class AnimaticError(Exception):
    """The animatic cannot be built; the message says what to do."""


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    shot: str = ""


@dataclass
class AnimaticResult:
    status: str  # built | prepared (playblasts ready, nothing encoded) | failed | cancelled
    path: pathlib.Path | None = None
    message: str = ""
    edit: EditList | None = None
    problems: list[str] = field(default_factory=list)
    playblasts_rendered: list[str] = field(default_factory=list)
    playblasts_reused: list[str] = field(default_factory=list)
    segments_encoded: list[str] = field(default_factory=list)
    segments_reused: list[str] = field(default_factory=list)
    joined: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("built", "prepared")


# --- where things go ---------------------------------------------------------------------


def output_root(scene) -> pathlib.Path:
    """The project output folder (``//standin/`` next to the .blend unless set otherwise)."""
    root = project_paths.output_root(scene)
    if root is None:
        raise AnimaticError("Save the .blend first: the output folder is relative to it "
                            "(or set an absolute output folder in the Project panel).")
    return root


def cache_root(scene) -> pathlib.Path:
    return output_root(scene) / "animatic" / "cache"


def default_path(scene, name: str = "animatic.mp4") -> pathlib.Path:
    return output_root(scene) / name


# --- reading the scene -------------------------------------------------------------------


def read_take(shot) -> TakeInput | None:
    """The shot's active take as found on disk, or None when it has none."""
    take = shot.active_take
    if take is None:
        return None
    folder = pathlib.Path(bpy.path.abspath(take.folder)) if take.folder else None
    info = TakeInput(name=take.name, folder=str(folder or ""), seed=take.seed, prompt=take.prompt,
                     loras=[take.loras] if take.loras else [], engine=take.engine, model=take.model,
                     profile=take.profile, created=take.created)
    what_to_do = "generate the shot again, or pick another take (or none, to see the blocking)."
    if folder is None or not folder.is_dir():
        info.problem = (f"{shot.name}: the folder of its take {take.name} ({take.folder or 'not set'}) is missing: "
                        f"{what_to_do}")
        return info
    record = takes.read_take(folder)
    if record is None:
        info.problem = (f"{shot.name}: take {take.name} in {folder} is not a complete take (no finished take.json): "
                        f"{what_to_do}")
        return info
    info.frames = {frame: str(path) for frame, path in takes.frame_files(folder).items()}
    clip = folder / takes.CLIP_FILE
    info.clip = str(clip) if clip.is_file() else ""
    info.seed, info.prompts, info.loras = record.seed, dict(record.prompts), list(record.loras)
    info.engine, info.model = record.engine or info.engine, record.model or info.model
    info.profile, info.created = record.profile or info.profile, record.created or info.created
    if not info.frames and not info.clip:
        info.problem = f"{shot.name}: take {take.name} has no frames or clip in {folder}: {what_to_do}"
    return info


def read_shots(scene) -> list[ShotInput]:
    """Every shot as the edit list wants it; the blocking is hashed only for shots without a take."""
    inputs = []
    for shot in scene.standin.shots:
        size = framing.SHOT_SIZE_BY_KEY.get(shot.shot_size)
        item = ShotInput(name=shot.name, frame_start=shot.frame_start, frame_end=shot.frame_end,
                         lens=round(shot.camera.data.lens if shot.camera is not None else shot.lens, 2),
                         size=shot.shot_size, size_label=size.label if size else shot.shot_size,
                         action=shot.action, notes=shot.notes, take=read_take(shot))
        if item.take is None and item.duration > 0:
            problem = shots.camera_problem(scene, shot)
            if problem:
                item.playblast_problem = problem
            else:
                try:
                    item.playblast_key = playblast.blocking_key(scene, shot)
                except playblast.PlayblastError as error:
                    item.playblast_problem = f"{shot.name}: {error}"
        inputs.append(item)
    return inputs


def read_sounds(scene) -> tuple[list[SoundInput], list[str]]:
    """The scene's sound strips that play, and a sentence for each one that cannot be used."""
    editor = scene.sequence_editor
    if editor is None:
        return [], []
    sounds, problems = [], []
    for strip in editor.strips_all:
        if strip.type != "SOUND" or strip.mute or strip.sound is None:
            continue
        path = bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)
        if not os.path.isfile(path):
            problems.append(f"Sound strip {strip.name}: its file {strip.sound.filepath} is missing, so the animatic "
                            f"is silent there; relink it in the Sequencer.")
            continue
        sounds.append(SoundInput(strip.name, path, float(strip.frame_start), int(strip.frame_final_start),
                                 int(strip.frame_final_end), round(float(strip.volume), 4)))
    return sounds, problems


def plan(scene, scale: float = DEFAULT_SCALE, cache: pathlib.Path | None = None) -> EditList:
    """The cut of ``scene`` as it stands (nothing is rendered)."""
    render = scene.render
    try:
        width, height = edit_list.output_size(render.resolution_x, render.resolution_y, scale)
        rate = Rate.from_blender(render.fps, render.fps_base)
    except ValueError as error:
        raise AnimaticError(f"{str(error).capitalize()}.") from error
    sounds, sound_problems = read_sounds(scene)
    edit = edit_list.build(read_shots(scene), rate, width, height, sounds,
                           cache if cache is not None else cache_root(scene))
    edit.problems += sound_problems
    return edit


# --- the edit scene ----------------------------------------------------------------------


def _new_effect(strips, name: str, kind: str, channel: int, start: int, length: int):
    """A colour/text strip; Blender 5 takes a length, 4.5 an end frame."""
    try:
        return strips.new_effect(name=name, type=kind, channel=channel, frame_start=start, length=length)
    except TypeError:
        return strips.new_effect(name=name, type=kind, channel=channel, frame_start=start, frame_end=start + length)


def _add_sound(strips, segment: edit_list.SoundSegment, channel: int):
    strip = strips.new_sound(name=segment.sound.name, filepath=segment.sound.filepath, channel=channel,
                             frame_start=segment.record_in)
    # trim the tail, then the head, then slide the sound under the shot: never over a neighbour
    strip.frame_final_end = segment.record_in + segment.offset + segment.length
    strip.frame_final_start = segment.record_in + segment.offset
    strip.frame_start = segment.record_in - segment.offset
    strip.channel = channel
    strip.volume = segment.sound.volume
    return strip


def _sound_channels(edit: EditList) -> dict[str, int]:
    names = []
    for segment in edit.sound:
        if segment.sound.name not in names:
            names.append(segment.sound.name)
    return {name: index + 1 for index, name in enumerate(names)}


def _add_slate(strips, event: Event, channel: int, height: int) -> None:
    color = _new_effect(strips, event.shot, "COLOR", channel, event.record_in, event.duration)
    color.color = SLATE_COLOR[:3]
    text = _new_effect(strips, f"{event.shot} slate", "TEXT", channel + 1, event.record_in, event.duration)
    text.text = f"MISSING — {event.shot}"
    text.font_size = max(8, round(height * 0.09))
    text.location = (0.5, 0.4)
    text.alignment_x = "CENTER"
    text.anchor_x, text.anchor_y = "CENTER", "CENTER"
    text.color = (0.95, 0.35, 0.3, 1.0)


def _png_size(path: pathlib.Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, None for anything else."""
    try:
        with open(path, "rb") as file:
            head = file.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _add_picture(strips, edit: EditList, event: Event, channel: int):
    width, height = edit.width, edit.height
    source = event.source
    if source.kind in ("frames", "still", "playblast"):
        first = pathlib.Path(source.files[0])
        # pictures at the animatic's size go in as they are: three times cheaper than fitting them. A take's
        # passes were rendered at a size snapped to 8 px through the same camera, so its frame holds the
        # animatic's and a little more on one axis: fill (crop those pixels) rather than fit (bars).
        exact = source.kind == "playblast" or _png_size(first) == (width, height)
        strip = strips.new_image(name=event.shot, filepath=str(first), channel=channel, frame_start=event.record_in,
                                 fit_method="ORIGINAL" if exact else "FILL")
        if source.kind == "still":
            strip.frame_final_duration = event.duration
        else:
            for path in source.files[1:]:
                strip.elements.append(os.path.basename(path))
        return strip
    if source.kind == "clip":
        try:
            strip = strips.new_movie(name=event.shot, filepath=source.clip, channel=channel,
                                     frame_start=event.record_in, fit_method="FILL")
        except RuntimeError as error:  # not a movie Blender can read
            edit_list.make_slate(edit, event, f"{event.shot}: the clip of take {event.take_name} cannot be read "
                                              f"({str(error).strip()}): generate the shot again.")
            _add_slate(strips, event, channel, height)
            return None
        if strip.frame_duration < event.duration:
            event.warnings.append(f"{event.shot}: the clip of take {event.take_name} has {strip.frame_duration} "
                                  f"frames for a shot of {event.duration}; its last frame is held.")
        strip.frame_final_duration = event.duration
        return strip
    _add_slate(strips, event, channel, height)
    return None


def _picture_settings(edit_scene, edit: EditList) -> None:
    render = edit_scene.render
    render.fps = edit.rate.numerator if edit.rate.denominator == 1 else round(edit.rate.fps)
    render.fps_base = 1.0 if edit.rate.denominator == 1 else round(edit.rate.fps) / edit.rate.fps
    render.resolution_x, render.resolution_y, render.resolution_percentage = edit.width, edit.height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.use_sequencer = True
    render.use_compositing = False
    render.film_transparent = False
    edit_scene.view_settings.view_transform = "Standard"
    edit_scene.view_settings.look = "None"
    edit_scene.view_settings.exposure, edit_scene.view_settings.gamma = 0.0, 1.0
    # the burn-ins: only the note, rewritten for every frame by _stamp_burn_in
    render.use_stamp = True
    for name in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time", "use_stamp_frame",
                 "use_stamp_frame_range", "use_stamp_memory", "use_stamp_hostname", "use_stamp_camera",
                 "use_stamp_lens", "use_stamp_scene", "use_stamp_marker", "use_stamp_filename",
                 "use_stamp_sequencer_strip", "use_stamp_labels"):
        setattr(render, name, False)
    render.use_stamp_note = True
    render.stamp_font_size = max(8, round(edit.height * 0.045))
    render.stamp_foreground = (1.0, 1.0, 1.0, 1.0)
    render.stamp_background = (0.0, 0.0, 0.0, 0.6)


def fill_edit_scene(scene, edit: EditList):
    """Make (or empty and refill) the "StandIn Edit" scene from ``edit``; returns it."""
    edit_scene = bpy.data.scenes.get(EDIT_SCENE)
    if edit_scene is None:
        edit_scene = bpy.data.scenes.new(EDIT_SCENE)
    edit_scene["standin_edit_of"] = scene.name
    editor = edit_scene.sequence_editor_create()
    for strip in list(editor.strips):
        editor.strips.remove(strip)
    edit_scene.timeline_markers.clear()
    _picture_settings(edit_scene, edit)
    edit_scene.frame_start = edit.start_frame
    edit_scene.frame_end = max(edit.start_frame, edit.end_frame)
    channels = _sound_channels(edit)
    unreadable = set()
    for segment in edit.sound:
        try:
            _add_sound(editor.strips, segment, channels[segment.sound.name])
        except RuntimeError as error:  # not a sound Blender can read
            if segment.sound.name not in unreadable:
                unreadable.add(segment.sound.name)
                edit.problems.append(f"Sound strip {segment.sound.name}: {segment.sound.filepath} cannot be read "
                                     f"({str(error).strip()}), so the animatic is silent there.")
    edit.sound = [s for s in edit.sound if s.sound.name not in unreadable]
    picture_channel = len(channels) + 1
    for event in edit.events:
        _add_picture(editor.strips, edit, event, picture_channel)
        edit_scene.timeline_markers.new(event.shot, frame=event.record_in)
    edit_scene[_BURN_IN_PROP] = json.dumps({"rows": edit.burn_in_table(), "start": edit.start_frame,
                                            "rate": [edit.rate.numerator, edit.rate.denominator]})
    edit_scene.render.stamp_note_text = edit.burn_in(edit.start_frame)
    return edit_scene


def _stamp_burn_in(scene, *_args) -> None:
    """render_pre: write this frame's burn-in into the stamp note (shot, take, lens, size, timecode…)."""
    data = scene.get(_BURN_IN_PROP)
    if not data:
        return
    table = json.loads(data)
    scene.render.stamp_note_text = edit_list.burn_in_from_table(
        table["rows"], scene.frame_current, Rate(*table["rate"]), table["start"])


class _BurnIns:
    """The burn-in handler, installed for the length of our renders."""

    def __enter__(self):
        if _stamp_burn_in not in bpy.app.handlers.render_pre:
            bpy.app.handlers.render_pre.append(_stamp_burn_in)
        return self

    def __exit__(self, *_exc):
        while _stamp_burn_in in bpy.app.handlers.render_pre:
            bpy.app.handlers.render_pre.remove(_stamp_burn_in)
        return False


# --- encoding ----------------------------------------------------------------------------


def _movie_settings(render, video: bool, audio: bool) -> None:
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5: the media type first
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ffmpeg = render.ffmpeg
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = "H264" if video else "NONE"
    if video:
        ffmpeg.constant_rate_factor = ENCODER["crf"]
        ffmpeg.ffmpeg_preset = ENCODER["preset"]
        ffmpeg.use_max_b_frames = True
        ffmpeg.max_b_frames = ENCODER["b_frames"]
        ffmpeg.gopsize = max(1, round(render.fps / render.fps_base))
        ffmpeg.use_autosplit = False
    ffmpeg.audio_codec = AUDIO["codec"] if audio else "NONE"
    if audio:
        ffmpeg.audio_bitrate = AUDIO["bitrate"]
        ffmpeg.audio_mixrate = AUDIO["mixrate"]
        ffmpeg.audio_channels = AUDIO["channels"]
    render.use_file_extension = True


def _render_movie(scene, first: int, last: int, target: pathlib.Path, video: bool = True,
                  audio: bool = False) -> pathlib.Path:
    """Render frames ``first``–``last`` of ``scene``'s sequencer to ``target`` (an .mp4), written
    under a temporary name and renamed when Blender has finished it."""
    partial = target.with_name(f".{target.stem}.partial-{uuid.uuid4().hex[:8]}.mp4")
    saved = (scene.frame_start, scene.frame_end, scene.render.filepath)
    try:
        _movie_settings(scene.render, video, audio)
        scene.frame_start, scene.frame_end = first, last
        scene.render.filepath = str(partial)
        with _BurnIns():
            bpy.ops.render.render(animation=True, scene=scene.name)
        if not partial.is_file() or partial.stat().st_size == 0:
            raise AnimaticError(f"Blender wrote no movie for frames {first}–{last} ({target.name}).")
        os.replace(partial, target)
        return target
    finally:
        scene.frame_start, scene.frame_end, scene.render.filepath = saved
        if partial.exists():
            partial.unlink()


def _render_sound(edit: EditList, target: pathlib.Path) -> pathlib.Path:
    """The cut's sound alone, as an AAC MP4 (rendered from a scratch scene holding only the sound)."""
    scratch = bpy.data.scenes.new(".StandIn Sound")
    try:
        render = scratch.render
        render.fps = edit.rate.numerator if edit.rate.denominator == 1 else round(edit.rate.fps)
        render.fps_base = 1.0 if edit.rate.denominator == 1 else round(edit.rate.fps) / edit.rate.fps
        render.resolution_x, render.resolution_y, render.resolution_percentage = 16, 16, 100
        render.use_stamp = False
        render.use_sequencer = True
        editor = scratch.sequence_editor_create()
        channels = _sound_channels(edit)
        for segment in edit.sound:
            _add_sound(editor.strips, segment, channels[segment.sound.name])
        _new_effect(editor.strips, "black", "COLOR", len(channels) + 1, edit.start_frame, edit.total_frames)
        return _render_movie(scratch, edit.start_frame, edit.end_frame, target, video=False, audio=True)
    finally:
        bpy.data.scenes.remove(scratch)


def _sound_key(edit: EditList) -> str:
    keyed = {"audio": AUDIO, "rate": [edit.rate.numerator, edit.rate.denominator],
             "frames": [edit.start_frame, edit.end_frame],
             "segments": [[s.sound.filepath, s.sound.volume, s.record_in, s.offset, s.length,
                           edit_list.file_stamp(s.sound.filepath)] for s in edit.sound]}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def _prune(cache: pathlib.Path, keep: set[pathlib.Path]) -> None:
    """Throw away cached playblasts and segments the current cut no longer uses."""
    keep = {p.resolve() for p in keep}
    for folder in (cache, cache / "segments"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name == "segments" or entry.resolve() in keep:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# --- the whole build ---------------------------------------------------------------------


def prepare(scene, scale: float = DEFAULT_SCALE, use_viewport: bool | None = None,
            result: AnimaticResult | None = None) -> Generator[Progress, None, AnimaticResult]:
    """Decide the cut and playblast every shot that needs it (cached): what the animatic, the board
    and the OTIO all start from. A generator that yields after each playblast frame; returns an
    unfinished result whose ``edit`` has every shot's media on disk (or a slate)."""
    result = result or AnimaticResult("failed")
    try:
        cache = cache_root(scene)
        edit = plan(scene, scale, cache)
    except AnimaticError as error:
        result.message = str(error)
        return result
    result.edit, result.problems = edit, edit.problems
    if not edit.events:
        result.message = "There is no shot to put in the animatic: add shots in the Shots panel."
        return result
    to_render = [e for e in edit.events if e.source.kind == "playblast" and not os.path.isdir(e.source.folder)]
    total = sum(e.duration for e in to_render)
    done = 0
    for event in edit.events:
        if event.source.kind != "playblast":
            continue
        if event not in to_render:
            result.playblasts_reused.append(event.shot)
            continue
        shot = scene.standin.shots[event.shot]
        frames = playblast.shot_frames(scene, shot, pathlib.Path(event.source.folder), edit.width, edit.height,
                                       use_viewport)
        try:
            for frame in frames:
                done += 1
                yield Progress("playblast", done, total, f"{event.shot} frame {frame}")
            result.playblasts_rendered.append(event.shot)
        except (playblast.PlayblastError, RuntimeError, OSError) as error:
            edit_list.make_slate(edit, event, f"{event.shot}: its playblast failed ({str(error).strip()}).")
        finally:
            frames.close()
    result.status = "prepared"
    return result


def build(scene, out: pathlib.Path | None = None, scale: float = DEFAULT_SCALE,
          use_viewport: bool | None = None) -> Generator[Progress, None, AnimaticResult]:
    """Build the animatic of ``scene`` into ``out`` (default ``<output>/animatic.mp4``): a generator
    that yields progress after each playblast frame and each encoded shot, and returns the result.
    Closing it early leaves nothing half-written behind."""
    started = time.perf_counter()
    result = AnimaticResult("failed")
    try:
        out = pathlib.Path(out) if out is not None else default_path(scene)
        cache = cache_root(scene)
        out.parent.mkdir(parents=True, exist_ok=True)
        (cache / "segments").mkdir(parents=True, exist_ok=True)
    except AnimaticError as error:
        result.message = str(error)
        return result
    except OSError as error:
        result.message = f"Cannot write the animatic into {out.parent} ({error.strerror or error}): pick another place."
        return result
    result = yield from prepare(scene, scale, use_viewport, result)
    if result.status != "prepared":
        return result
    result.status = "failed"
    edit = result.edit

    edit_scene = fill_edit_scene(scene, edit)
    segments = cache / "segments"
    pieces = []
    for number, event in enumerate(edit.events, start=1):
        key = edit_list.segment_key(edit, event, ENCODER)
        piece = segments / f"{event.shot}-{key[:16]}.mp4"
        if piece.is_file():
            result.segments_reused.append(event.shot)
        else:
            try:
                _render_movie(edit_scene, event.record_in, event.record_out - 1, piece)
            except (AnimaticError, RuntimeError, OSError) as error:
                result.message = f"{event.shot}: encoding failed ({str(error).strip()})."
                return result
            result.segments_encoded.append(event.shot)
        pieces.append(piece)
        yield Progress("encode", number, len(edit.events), event.shot)

    keep = set(pieces) | {pathlib.Path(e.source.folder) for e in edit.events if e.source.kind == "playblast"}
    sound = None
    try:
        if edit.sound:
            sound = cache / f"sound-{_sound_key(edit)[:16]}.mp4"
            if not sound.is_file():
                _render_sound(edit, sound)
                yield Progress("sound", 1, 1)
            keep.add(sound)
        try:
            mp4_join.join(pieces, out, sound)
            result.joined = True
        except mp4_join.JoinError as error:
            # a broken or foreign piece in the cache: forget the pieces (the next build encodes them
            # afresh) and encode this cut in one go
            result.problems.append(f"The shots' pieces could not be joined ({error}); the cut was encoded in one go.")
            for piece in pieces:
                piece.unlink(missing_ok=True)
            keep.difference_update(pieces)
            _render_movie(edit_scene, edit.start_frame, edit.end_frame, out, audio=bool(edit.sound))
    except (AnimaticError, RuntimeError, OSError) as error:
        result.message = f"Encoding the animatic failed: {str(error).strip()}"
        return result
    _prune(cache, keep)
    result.problems = edit.problems + [w for e in edit.events for w in e.warnings if w not in edit.problems]
    result.status, result.path = "built", out
    result.seconds = time.perf_counter() - started
    return result


class AnimaticJob:
    """``build`` (or ``prepare``) one step at a time, for a modal operator's timer; ``cancel`` stops
    between steps."""

    def __init__(self, scene, out: pathlib.Path | None = None, scale: float = DEFAULT_SCALE,
                 use_viewport: bool | None = None, encode: bool = True):
        self._steps = build(scene, out, scale, use_viewport) if encode else prepare(scene, scale, use_viewport)
        self.progress: Progress | None = None
        self.result: AnimaticResult | None = None

    def tick(self) -> bool:
        if self.result is not None:
            return False
        try:
            self.progress = next(self._steps)
        except StopIteration as finished:
            self.result = finished.value
            return False
        return True

    def cancel(self) -> None:
        if self.result is None:
            self._steps.close()
            self.result = AnimaticResult("cancelled", message="Animatic cancelled.")

    def run(self) -> AnimaticResult:
        while self.tick():
            pass
        return self.result


# --- stills for the board ----------------------------------------------------------------


def board_images(scene, edit: EditList, folder: pathlib.Path | None = None) -> dict[str, str | None]:
    """One picture per shot for the storyboard sheet: its middle frame (None for a slate). Frames
    and playblasts are files already; a clip's middle frame is read out of it into the cache."""
    from . import board

    images: dict[str, str | None] = {}
    for event in edit.events:
        middle = event.duration // 2
        images[event.shot] = None
        if event.source.kind in ("frames", "still", "playblast") and os.path.isfile(event.source.files[middle]):
            images[event.shot] = event.source.files[middle]
        elif event.source.kind == "clip":
            path = (folder or cache_root(scene)) / f"{event.shot}-{event.key[:16]}-board.png"
            if path.is_file() or board.still_from_clip(event.source.clip, middle, path) is not None:
                images[event.shot] = str(path)
    return images


# --- board and OTIO ----------------------------------------------------------------------


def project_title(scene) -> str:
    """The project's name on sheets and timelines: the .blend's name (else the scene's)."""
    return pathlib.Path(bpy.data.filepath).stem if bpy.data.filepath else scene.name


def aspect_label(scene) -> str:
    aspect = formats.ASPECT_BY_KEY.get(scene.standin.project.aspect)
    if aspect is not None:
        return aspect.label.split(" ")[0]
    return f"{scene.render.resolution_x / max(1, scene.render.resolution_y):.2f}:1"


def export_board(scene, edit: EditList, pdf: pathlib.Path | None,
                 png: pathlib.Path | None = None) -> list[pathlib.Path]:
    """The storyboard sheet of a prepared cut as a PDF and/or a PNG contact sheet; returns the files.
    The PNG comes first: it needs nothing beyond OpenCV, so it is there even when the PDF cannot be."""
    from . import board

    sheet = board.sheet_from_edit(edit, project_title(scene), aspect_label(scene), board_images(scene, edit))
    written = []
    if png is not None:
        written.append(board.write_contact_sheet(sheet, png))
    if pdf is not None:
        written.insert(0, board.write_pdf(sheet, pdf))
    return written


def export_otio(scene, edit: EditList, path: pathlib.Path, edl: bool = True):
    """(otio path, EDL path or None, notes) of a prepared cut."""
    from . import otio_export

    return otio_export.write(edit, path, project_title(scene), edl=edl)
