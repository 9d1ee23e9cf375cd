"""The cut as OpenTimelineIO, read back: a clip per shot, its range, media and StandIn metadata; sound
on an audio track; a CMX 3600 EDL beside it."""

import pathlib
import sys

import pytest

from standin.addon import edit_list, otio_export
from standin.addon.edit_list import Rate, ShotInput, SoundInput, TakeInput

otio = pytest.importorskip("opentimelineio")


def _plain(value):
    """OTIO metadata (AnyDictionary, AnyVector) as dicts and lists."""
    if hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value


def _cut(tmp_path: pathlib.Path, rate: Rate) -> edit_list.EditList:
    folder = tmp_path / "SQ010_SH0020" / "v003"
    folder.mkdir(parents=True)
    frames = {}
    for frame in range(25, 37):
        (folder / f"{frame:04d}.png").write_bytes(b"frame")
        frames[frame] = str(folder / f"{frame:04d}.png")
    take = TakeInput("v003", str(folder), frames, seed=4242, prompts={"prompt": "two people at a table",
                                                                     "negative": "blurry"},
                     loras=[{"character": "Mara", "file": "mara.safetensors", "weight": 0.8}],
                     engine="sketch", model="sd15")
    still_folder = tmp_path / "SQ010_SH0030" / "v001"
    still_folder.mkdir(parents=True)
    (still_folder / "0040.png").write_bytes(b"still")
    still = TakeInput("v001", str(still_folder), {40: str(still_folder / "0040.png")}, seed=7)
    gone = TakeInput("v002", str(tmp_path / "gone"), problem="SQ010_SH0040: the folder of its take v002 is missing.")
    shots = [
        ShotInput("SQ010_SH0010", 1, 24, lens=24.0, size="WS", size_label="Wide", action="Mara comes in.",
                  playblast_key="abc"),
        ShotInput("SQ010_SH0020", 25, 36, lens=35.0, size="MS", size_label="Medium", take=take, notes="hold"),
        ShotInput("SQ010_SH0030", 37, 48, lens=50.0, size="CU", size_label="Close-up", take=still),
        ShotInput("SQ010_SH0040", 49, 54, lens=85.0, size="ECU", size_label="Extreme close-up", take=gone),
    ]
    sound = SoundInput("dialogue", str(tmp_path / "dialogue.wav"), frame_start=0, play_start=10, play_end=40)
    return edit_list.build(shots, rate, 128, 54, sounds=[sound], cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("rate", [Rate(24), Rate(24000, 1001)], ids=["24", "23.976"])
def test_timeline_reads_back_with_every_clip_its_range_and_metadata(tmp_path, rate):
    edit = _cut(tmp_path, rate)
    path, edl, notes = otio_export.write(edit, tmp_path / "cut.otio", "Kitchen")
    timeline = otio.adapters.read_from_file(str(path))
    assert timeline.name == "Kitchen"
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(video) == 1
    clips = list(video[0].find_clips())
    assert [c.name for c in clips] == [e.shot for e in edit.events]
    fps = 24000 / 1001 if rate.denominator == 1001 else 24.0
    for clip, event in zip(clips, edit.events):
        assert clip.source_range.duration.value == event.duration
        assert clip.source_range.duration.rate == pytest.approx(fps)
        placed = video[0].range_of_child(clip)
        assert placed.start_time.value == event.record_in - edit.start_frame
        meta = _plain(clip.metadata["standin"])
        assert meta["shot"] == event.shot and meta["lens_mm"] == event.lens and meta["shot_size"] == event.size
        assert meta["scene_frames"] == [event.source_in, event.source_out - 1]
    assert timeline.duration().value == edit.total_frames

    blocking, take, still, missing = clips
    assert isinstance(blocking.media_reference, otio.schema.ImageSequenceReference)
    assert blocking.media_reference.target_url_base.startswith("file://") and "SQ010_SH0010-abc" in \
        blocking.media_reference.target_url_base
    assert blocking.source_range.start_time.value == 1 and blocking.metadata["standin"]["take"] == ""

    sequence = take.media_reference
    assert isinstance(sequence, otio.schema.ImageSequenceReference)
    assert (sequence.start_frame, sequence.frame_zero_padding, sequence.name_suffix) == (25, 4, ".png")
    assert sequence.target_url_for_image_number(0).endswith("SQ010_SH0020/v003/0025.png")
    assert take.source_range.start_time.value == 25
    meta = _plain(take.metadata["standin"])
    assert meta["take"] == "v003" and meta["seed"] == 4242 and meta["engine"] == "sketch"
    assert meta["prompts"] == {"prompt": "two people at a table", "negative": "blurry"}
    assert meta["loras"] == [{"character": "Mara", "file": "mara.safetensors", "weight": 0.8}]
    assert meta["notes"] == "hold"

    assert isinstance(still.media_reference, otio.schema.ExternalReference)
    assert still.media_reference.target_url.endswith("v001/0040.png") and still.metadata["standin"]["seed"] == 7
    assert isinstance(missing.media_reference, otio.schema.MissingReference)
    assert "missing" in missing.metadata["standin"]["missing"]

    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert len(audio) == 1
    sound_clips = list(audio[0].find_clips())
    assert [(audio[0].range_of_child(c).start_time.value, c.source_range.start_time.value,
             c.source_range.duration.value) for c in sound_clips] == \
        [(s.record_in - 1, s.offset, s.length) for s in edit.sound]
    assert sound_clips[0].media_reference.target_url.endswith("dialogue.wav")
    assert _plain(timeline.metadata["standin"]["problems"]) == edit.problems
    assert notes == [] and edl is not None


def test_edl_lists_every_shot_with_record_timecodes(tmp_path):
    pytest.importorskip("otio_cmx3600_adapter")
    edit = _cut(tmp_path, Rate(24))
    _path, edl, notes = otio_export.write(edit, tmp_path / "cut.otio", "Kitchen")
    assert notes == []
    text = edl.read_text()
    events = [line for line in text.splitlines() if line[:3].isdigit()]
    assert len(events) == len(edit.events)
    for line, event in zip(events, edit.events):
        assert event.shot in line
        record_in, record_out = line.split()[-2:]
        assert record_in == edit_list.timecode(event.record_in - 1, edit.rate)
        assert record_out == edit_list.timecode(event.record_out - 1, edit.rate)
    assert "TITLE: Kitchen" in text and not list(tmp_path.glob(".*partial*"))


def test_no_edl_when_asked_for_none(tmp_path):
    edit = _cut(tmp_path, Rate(25))
    path, edl, notes = otio_export.write(edit, tmp_path / "cut.otio", "Kitchen", edl=False)
    assert path.is_file() and edl is None and notes == [] and not (tmp_path / "cut.edl").exists()


def test_without_opentimelineio_the_export_says_what_to_install(tmp_path, monkeypatch):
    edit = _cut(tmp_path, Rate(24))
    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # as in a Blender whose Python lacks it
    with pytest.raises(otio_export.OtioError, match="needs the opentimelineio package.*pip install opentimelineio"):
        otio_export.write(edit, tmp_path / "cut.otio", "Kitchen")
    assert not (tmp_path / "cut.otio").exists()
