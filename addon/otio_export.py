# SPDX-License-Identifier: GPL-3.0-or-later
"""The cut as an OpenTimelineIO timeline (and a CMX 3600 EDL). Pure Python (no bpy).

One clip per shot on the video track, in shot order, at its length: its media is the active take's
frames (an image sequence named by scene frame), its still, its clip, or the playblast of its
blocking; a shot without picture gets a missing reference that says why. StandIn's metadata rides
on each clip under ``metadata["standin"]``: shot, take, seed, prompts, LoRAs, lens, size, scene
frames. The scene's sound is laid on audio tracks (one per sound strip), cut shot by shot like the
picture. ``opentimelineio`` is imported only here, when asked for.
"""

from __future__ import annotations

import os
import pathlib

from . import edit_list

EDL_ADAPTER = "cmx_3600"


class OtioError(Exception):
    """The timeline cannot be written; the message says what to do."""


def _otio():
    try:
        import opentimelineio as otio
    except ImportError as error:
        raise OtioError("Exporting OTIO needs the opentimelineio package, which this Python does not have: "
                        "install StandIn from its extension zip (it bundles OpenTimelineIO), or pip install "
                        "opentimelineio otio-cmx3600-adapter into this Python.") from error
    return otio


def _frame_number(path: str) -> int | None:
    stem = pathlib.Path(path).stem
    return int(stem) if stem.isdigit() else None


def _metadata(edit: edit_list.EditList, event: edit_list.Event) -> dict:
    take = event.take if event.take_name else None
    prompts = {}
    if take is not None:
        prompts = dict(take.prompts) if take.prompts else ({"prompt": take.prompt} if take.prompt else {})
    return {
        "shot": event.shot,
        "number": event.number,
        "take": event.take_name,
        "source": event.source.kind,
        "seed": take.seed if take is not None else None,
        "prompts": prompts,
        "loras": list(take.loras) if take is not None else [],
        "engine": take.engine if take is not None else "",
        "model": take.model if take is not None else "",
        "lens_mm": event.lens,
        "shot_size": event.size,
        "shot_size_label": event.size_label,
        "scene_frames": [event.source_in, event.source_out - 1],
        "record_frames": [event.record_in, event.record_out - 1],
        "action": event.action,
        "notes": event.notes,
        "missing": event.source.reason if event.source.kind == "slate" else "",
        "warnings": list(event.warnings),
    }


def _media(otio, event: edit_list.Event, rate: float):
    """(media reference, first frame of the shot in the media's own time)."""
    RationalTime, TimeRange = otio.opentime.RationalTime, otio.opentime.TimeRange
    source = event.source
    if source.kind in ("frames", "playblast"):
        numbers = [_frame_number(path) for path in source.files]
        if all(n is not None for n in numbers) and len({os.path.dirname(p) for p in source.files}) == 1:
            low, high = min(numbers), max(numbers)
            reference = otio.schema.ImageSequenceReference(
                target_url_base=pathlib.Path(source.folder).absolute().as_uri() + "/",
                name_prefix="", name_suffix=pathlib.Path(source.files[0]).suffix, start_frame=low, frame_step=1,
                rate=rate,
                frame_zero_padding=4,
                missing_frame_policy=otio.schema.ImageSequenceReference.MissingFramePolicy.hold,
                available_range=TimeRange(RationalTime(low, rate), RationalTime(high - low + 1, rate)))
            return reference, numbers[0]
    if source.kind in ("frames", "still", "playblast"):
        reference = otio.schema.ExternalReference(target_url=pathlib.Path(source.files[0]).absolute().as_uri())
        return reference, 0
    if source.kind == "clip":
        return otio.schema.ExternalReference(target_url=pathlib.Path(source.clip).absolute().as_uri()), 0
    return otio.schema.MissingReference(name=event.shot, metadata={"standin": {"reason": source.reason}}), 0


def timeline(edit: edit_list.EditList, title: str):
    """The cut as an ``otio.schema.Timeline``."""
    otio = _otio()
    rate = edit.rate.fps
    RationalTime, TimeRange = otio.opentime.RationalTime, otio.opentime.TimeRange
    result = otio.schema.Timeline(name=title)
    result.global_start_time = RationalTime(0, rate)
    result.metadata["standin"] = {
        "rate": [edit.rate.numerator, edit.rate.denominator],
        "size": [edit.width, edit.height],
        "running_time": edit.running_time,
        "total_frames": edit.total_frames,
        "problems": list(edit.problems),
    }
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for event in edit.events:
        reference, first = _media(otio, event, rate)
        clip = otio.schema.Clip(name=event.shot, media_reference=reference,
                                source_range=TimeRange(RationalTime(first, rate), RationalTime(event.duration, rate)))
        clip.metadata["standin"] = _metadata(edit, event)
        video.append(clip)
    result.tracks.append(video)

    by_sound: dict[str, list[edit_list.SoundSegment]] = {}
    for segment in edit.sound:
        by_sound.setdefault(segment.sound.name, []).append(segment)
    for number, (name, segments) in enumerate(by_sound.items(), start=1):
        audio = otio.schema.Track(name=f"A{number}", kind=otio.schema.TrackKind.Audio)
        position = edit.start_frame
        for segment in segments:
            if segment.record_in > position:
                audio.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, rate),
                                                                    RationalTime(segment.record_in - position, rate))))
            reference = otio.schema.ExternalReference(
                target_url=pathlib.Path(segment.sound.filepath).absolute().as_uri())
            clip = otio.schema.Clip(name=name, media_reference=reference,
                                    source_range=TimeRange(RationalTime(segment.offset, rate),
                                                           RationalTime(segment.length, rate)))
            clip.metadata["standin"] = {"sound": name, "volume": segment.sound.volume}
            audio.append(clip)
            position = segment.record_out
        result.tracks.append(audio)
    return result


def _atomic_write(otio, value, path: pathlib.Path, adapter: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        otio.adapters.write_to_file(value, str(partial), adapter_name=adapter)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def write(edit: edit_list.EditList, path: str | os.PathLike, title: str,
          edl: str | os.PathLike | None | bool = True) -> tuple[pathlib.Path, pathlib.Path | None, list[str]]:
    """Write ``path`` (.otio) and, when the CMX 3600 adapter is installed, an EDL beside it (``edl``:
    True for ``<path>.edl``, a path, or False). Returns (otio path, EDL path or None, notes)."""
    otio = _otio()
    path = pathlib.Path(path)
    cut = timeline(edit, title)
    _atomic_write(otio, cut, path, "otio_json")
    notes = []
    edl_path = None
    if edl:
        if EDL_ADAPTER not in otio.adapters.available_adapter_names():
            notes.append("No EDL: the CMX 3600 adapter is not installed (pip install otio-cmx3600-adapter).")
        else:
            edl_path = path.with_suffix(".edl") if edl is True else pathlib.Path(edl)
            try:
                _atomic_write(otio, edl_timeline(otio, cut), edl_path, EDL_ADAPTER)
            except Exception as error:  # the adapter's own errors are many and untyped
                notes.append(f"No EDL: the CMX 3600 adapter refused the cut ({error}).")
                edl_path = None
    return path, edl_path, notes


def edl_timeline(otio, cut):
    """A copy of ``cut`` an EDL can hold: the picture track, each clip's media a plain file
    reference (an EDL names a reel and a source timecode, not an image sequence)."""
    copy = cut.deepcopy()
    for track in list(copy.tracks):
        if track.kind != otio.schema.TrackKind.Video:
            copy.tracks.remove(track)
    for clip in copy.find_clips():
        clip.metadata["cmx_3600"] = {"reel": clip.name}
        reference = clip.media_reference
        if isinstance(reference, otio.schema.ImageSequenceReference):
            clip.media_reference = otio.schema.ExternalReference(
                target_url=reference.target_url_base, available_range=reference.available_range)
    return copy
