"""The animatic's edit list: order, lengths, sources, timecodes, problems, sound in sync, cache keys."""

import pathlib

import pytest

from standin.addon import edit_list
from standin.addon.edit_list import Rate, ShotInput, SoundInput, TakeInput

FILM = Rate(24)
NTSC_FILM = Rate.from_blender(24, 1.001)


def _shot(name, start, end, **kwargs):
    kwargs.setdefault("playblast_key", f"blocking-of-{name}")
    return ShotInput(name, start, end, lens=35.0, size="MS", size_label="Medium", **kwargs)


def _take(folder: pathlib.Path, frames, name="v001", **kwargs) -> TakeInput:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for frame in frames:
        path = folder / f"{frame:04d}.png"
        path.write_bytes(b"png" + bytes([frame % 256]))
        files[frame] = str(path)
    return TakeInput(name, str(folder), files, **kwargs)


def test_rates_from_blender_are_exact_fractions():
    assert NTSC_FILM == Rate(24000, 1001) and NTSC_FILM.nominal == 24
    assert Rate.from_blender(30, 1.001) == Rate(30000, 1001)
    assert Rate.from_blender(25, 1.0) == Rate(25) and Rate(25).label() == "25 fps"
    assert abs(NTSC_FILM.seconds(24000) - 1001.0) < 1e-9
    with pytest.raises(ValueError):
        Rate.from_blender(0, 1.0)


def test_timecode_is_non_drop_and_counts_nominal_frames():
    assert edit_list.timecode(0, FILM) == "00:00:00:00"
    assert edit_list.timecode(24 * 3661 + 5, FILM) == "01:01:01:05"
    # 23.976 counts 24 frames a timecode second, so frame 23976 reads 00:16:39:00 (NDF), not 00:16:40
    assert edit_list.timecode(23976, NTSC_FILM) == "00:16:39:00"
    assert edit_list.timecode(29, Rate(30000, 1001)) == "00:00:00:29"
    assert edit_list.running_time(180, FILM) == "7.5 s"
    assert edit_list.running_time(24 * 67, FILM) == "1 min 07 s"
    assert edit_list.running_time(24 * 3725, FILM) == "1 h 02 min 05 s"


def test_shots_follow_one_another_in_list_order_at_their_length(tmp_path):
    shots = [_shot("SQ010_SH0020", 73, 132), _shot("SQ010_SH0010", 1, 72), _shot("SQ010_SH0030", 133, 180)]
    edit = edit_list.build(shots, FILM, 640, 268, cache_dir=tmp_path)
    assert [e.shot for e in edit.events] == ["SQ010_SH0020", "SQ010_SH0010", "SQ010_SH0030"]
    assert [(e.record_in, e.record_out) for e in edit.events] == [(1, 61), (61, 133), (133, 181)]
    assert [(e.source_in, e.source_out) for e in edit.events] == [(73, 133), (1, 73), (133, 181)]
    assert edit.total_frames == 180 and edit.end_frame == 180 and edit.running_time == "7.5 s"
    assert edit.total_timecode == "00:00:07:12"
    assert edit.problems == []
    first = edit.events[0]
    assert first.source.kind == "playblast"
    assert first.source.folder == str(tmp_path / "SQ010_SH0020-blocking-of-SQ01")  # <shot>-<key[:16]>
    assert [pathlib.Path(f).name for f in first.source.files[:2]] == ["0073.jpg", "0074.jpg"]
    assert edit.event_at(61).shot == "SQ010_SH0010" and edit.event_at(181) is None


def test_burn_in_names_shot_take_lens_size_timecode_and_frame_counters(tmp_path):
    take = _take(tmp_path / "SH0020" / "v003", range(73, 133), name="v003")
    edit = edit_list.build([_shot("SQ010_SH0010", 1, 72), _shot("SQ010_SH0020", 73, 132, take=take)],
                           NTSC_FILM, 640, 268)
    assert edit.burn_in(1) == "SQ010_SH0010  blocking  35mm  MS  |  00:00:00:00  |  0001  (1/72)"
    assert edit.burn_in(78) == "SQ010_SH0020  v003  35mm  MS  |  00:00:03:05  |  0078  (6/60)"
    rows = edit.burn_in_table()
    assert edit_list.burn_in_from_table(rows, 78, NTSC_FILM, 1) == edit.burn_in(78)
    assert edit_list.burn_in_from_table(rows, 500, NTSC_FILM, 1) == ""


def test_take_frames_stills_clips_and_holds(tmp_path):
    full = _take(tmp_path / "a" / "v001", range(1, 5))
    still = _take(tmp_path / "b" / "v002", [7], name="v002")
    partial = _take(tmp_path / "c" / "v001", [20, 22])
    moved = _take(tmp_path / "d" / "v001", [1, 2, 3])
    clip = TakeInput("v004", str(tmp_path / "e"), clip=str(tmp_path / "e" / "clip.mp4"))
    edit = edit_list.build([
        _shot("SQ010_SH0010", 1, 4, take=full),
        _shot("SQ010_SH0020", 5, 10, take=still),
        _shot("SQ010_SH0030", 20, 23, take=partial),
        _shot("SQ010_SH0040", 40, 43, take=moved),
        _shot("SQ010_SH0050", 50, 51, take=clip),
    ], FILM, 64, 36)
    kinds = [e.source.kind for e in edit.events]
    assert kinds == ["frames", "still", "frames", "frames", "clip"]
    names = [[pathlib.Path(f).name for f in e.source.files] for e in edit.events]
    assert names[0] == ["0001.png", "0002.png", "0003.png", "0004.png"]
    assert names[1] == ["0007.png"] * 6
    assert names[2] == ["0020.png", "0020.png", "0022.png", "0022.png"]  # the earlier frame is held
    assert names[3] == ["0001.png", "0002.png", "0003.png", "0003.png"]  # made for other frames: in order
    assert edit.events[4].source.clip.endswith("clip.mp4")
    assert [e.take_name for e in edit.events] == ["v001", "v002", "v001", "v001", "v004"]
    assert any("SQ010_SH0030" in p and "held" in p for p in edit.problems)
    assert any("SQ010_SH0040" in p and "laid in order" in p for p in edit.problems)


def test_bad_input_is_reported_and_the_rest_still_builds(tmp_path):
    gone = TakeInput("v002", str(tmp_path / "gone"), problem="SQ010_SH0040: the folder of its take v002 is missing.")
    edit = edit_list.build([
        _shot("SQ010_SH0010", 1, 48),
        _shot("SQ010_SH0020", 30, 60),         # overlaps SH0010 on 30-48
        _shot("SQ010_SH0030", 61, 60),         # zero length
        _shot("SQ010_SH0040", 61, 80, take=gone),
        _shot("SQ010_SH0050", 81, 90, playblast_key="", playblast_problem="SQ010_SH0050: its camera was deleted."),
        _shot("SQ010_SH0010", 91, 99),         # a second shot of the same name
    ], FILM, 64, 36)
    assert [e.shot for e in edit.events] == ["SQ010_SH0010", "SQ010_SH0020", "SQ010_SH0040", "SQ010_SH0050"]
    assert [e.duration for e in edit.events] == [48, 31, 20, 10]
    assert [e.source.kind for e in edit.events] == ["playblast", "playblast", "slate", "slate"]
    text = "\n".join(edit.problems)
    assert "SQ010_SH0030 has no frames" in text and "left out" in text
    assert "overlap on frames 30–48" in text
    assert "MISSING — SQ010_SH0040: the folder of its take v002 is missing." in text
    assert "MISSING — SQ010_SH0050: its camera was deleted." in text
    assert "Two shots are named SQ010_SH0010" in text
    assert edit.burn_in(80).startswith("SQ010_SH0040  MISSING")
    assert edit.events[2].take_name == ""


def test_sound_is_cut_with_the_picture_and_joined_where_it_runs_on(tmp_path):
    music = SoundInput("music", str(tmp_path / "music.wav"), frame_start=-10, play_start=1, play_end=200)
    line = SoundInput("line", str(tmp_path / "line.wav"), frame_start=100, play_start=110, play_end=130)
    shots = [_shot("SQ010_SH0010", 1, 50), _shot("SQ010_SH0020", 51, 100),  # continuous: joined
             _shot("SQ010_SH0030", 121, 140), _shot("SQ010_SH0040", 101, 120)]  # reordered
    edit = edit_list.build(shots, FILM, 64, 36, sounds=[music, line])
    music_parts = [(s.record_in, s.offset, s.length) for s in edit.sound if s.sound is music]
    assert music_parts == [(1, 11, 100), (101, 131, 20), (121, 111, 20)]
    line_parts = [(s.record_in, s.offset, s.length) for s in edit.sound if s.sound is line]
    # SH0030 (scene 121-140, at edit 101) holds the line's scene frames 121-129; SH0040 (scene 101-120, at
    # edit 121) holds 110-120, from edit frame 130
    assert line_parts == [(101, 21, 9), (130, 10, 11)]
    for segment in edit.sound:  # every sample sits under the picture of the same scene frame
        for k in range(segment.length):
            event = edit.event_at(segment.record_in + k)
            scene_frame = event.source_in + (segment.record_in + k - event.record_in)
            assert scene_frame == segment.sound.frame_start + segment.offset + k


def test_keys_change_with_what_the_picture_shows_only(tmp_path):
    take = _take(tmp_path / "t" / "v001", range(1, 5))

    def keys(shots, **kwargs):
        return [e.key for e in edit_list.build(shots, FILM, 64, 36, **kwargs).events]

    base = keys([_shot("SQ010_SH0010", 1, 4, take=take), _shot("SQ010_SH0020", 5, 8)])
    assert base == keys([_shot("SQ010_SH0010", 1, 4, take=take), _shot("SQ010_SH0020", 5, 8)])
    changed_blocking = keys([_shot("SQ010_SH0010", 1, 4, take=take),
                             _shot("SQ010_SH0020", 5, 8, playblast_key="moved")])
    assert changed_blocking[0] == base[0] and changed_blocking[1] != base[1]
    (tmp_path / "t" / "v001" / "0002.png").write_bytes(b"repainted frame")
    assert keys([_shot("SQ010_SH0010", 1, 4, take=take), _shot("SQ010_SH0020", 5, 8)])[0] != base[0]
    assert keys([_shot("SQ010_SH0010", 1, 4, take=take), _shot("SQ010_SH0020", 5, 8)])[1] == base[1]
    smaller = edit_list.build([_shot("SQ010_SH0020", 5, 8)], FILM, 32, 18).events[0].key
    assert smaller != base[1]


def test_segment_keys_follow_the_place_in_the_cut():
    one = edit_list.build([_shot("SQ010_SH0010", 1, 10), _shot("SQ010_SH0020", 11, 20)], FILM, 64, 36)
    longer_first = edit_list.build([_shot("SQ010_SH0010", 1, 12), _shot("SQ010_SH0020", 11, 20)], FILM, 64, 36)
    assert one.events[1].key == longer_first.events[1].key  # same pictures…
    # …but it now starts two frames later, so its burnt-in timecode differs: encode it again
    assert edit_list.segment_key(one, one.events[1]) != edit_list.segment_key(longer_first, longer_first.events[1])
    assert edit_list.segment_key(one, one.events[1]) == edit_list.segment_key(one, one.events[1])
    assert edit_list.segment_key(one, one.events[1], {"crf": 18}) != edit_list.segment_key(one, one.events[1])


def test_a_failed_playblast_becomes_a_slate():
    edit = edit_list.build([_shot("SQ010_SH0010", 1, 10)], FILM, 64, 36)
    before = edit.events[0].key
    edit_list.make_slate(edit, edit.events[0], "SQ010_SH0010: its playblast failed (out of memory).")
    assert edit.events[0].source.kind == "slate" and edit.events[0].key != before
    assert edit.problems[-1].startswith("MISSING — SQ010_SH0010: its playblast failed")


def test_output_size_keeps_the_aspect_in_even_pixels():
    assert edit_list.output_size(1280, 536, 0.5) == (640, 268)
    assert edit_list.output_size(1920, 800, 0.25) == (480, 200)
    width, height = edit_list.output_size(1080, 1350, 0.1)
    assert width % 2 == 0 and height % 2 == 0
    with pytest.raises(ValueError, match="scale"):
        edit_list.output_size(1920, 1080, 2.0)
