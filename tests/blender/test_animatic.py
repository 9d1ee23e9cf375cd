"""The animatic, built by Blender and probed with FFmpeg (PyAV): shots in order at their length, takes
and playblasts, sound, burn-ins, rebuilds that render only what changed, bad input, the CLI and the
operators; the board and the OTIO read back."""

import json
import math
import pathlib
import struct
import subprocess
import sys
import wave
from fractions import Fraction

import bpy
import cv2
import movies
import numpy as np
import pytest

from standin.addon import animatic, blocking, shots, takes
from standin.operators.characters import add_character

av = pytest.importorskip("av")

RED, GREEN = (220, 40, 30), (40, 200, 60)  # RGB


def _project(scene, tmp_path: pathlib.Path, durations=(6, 4, 5), fps="24") -> list:
    project = scene.standin.project
    project.aspect, project.resolution, project.fps = "16:9", 128, fps
    blocking.add_piece(scene, "wall", location=(0, 2.0, 0))
    add_character(scene, "Ada", location=(0, 0, 0))
    made = []
    for size, duration in zip(("FS", "MCU", "MS", "CU"), durations):
        shot = shots.add_shot(scene, duration=duration)
        shot.shot_size = size
        shot.subjects.add().name = "Ada"
        shots.frame_shot(scene, shot)
        shot.action = f"Ada in a {size} shot."
        made.append(shot)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"), check_existing=False)
    return made


def _give_take(scene, shot, colours: dict, size=(128, 72), clip: list | None = None) -> pathlib.Path:
    """A committed take of solid-colour frames (scene frame → RGB), or of a clip of solid-colour frames,
    recorded as the shot's active take."""
    with takes.StagedTake(animatic.output_root(scene) / shot.name) as staged:
        for frame, colour in colours.items():
            pixels = np.zeros((size[1], size[0], 3), np.uint8)
            pixels[:] = colour[::-1]
            cv2.imwrite(str(staged.path(takes.frame_file(frame))), pixels)
        if clip:
            with av.open(str(staged.path(takes.CLIP_FILE)), "w") as out:
                movies.flush(out, movies.encode_colours(out, clip, size, 24))
        folder = staged.commit(takes.TakeRecord(name="", shot=shot.name, seed=321, profile="preview",
                                                engine="sketch", prompts={"prompt": f"{shot.name} prompt"}))
    take = shot.takes.add()
    take.name, take.folder, take.seed, take.engine = folder.name, bpy.path.relpath(str(folder)) + "/", 321, "sketch"
    shot.take_index = len(shot.takes) - 1
    return folder


def _add_sound(scene, tmp_path: pathlib.Path, seconds: float = 2.0):
    path = tmp_path / "dialogue.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 330 * i / 48000)))
                                 for i in range(int(48000 * seconds))))
    return scene.sequence_editor_create().strips.new_sound("dialogue", str(path), 1, 1)


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as movie:
        return [frame.to_ndarray(format="rgb24") for frame in movie.decode(video=0)]


def _probe(path) -> dict:
    with av.open(str(path)) as movie:
        video = movie.streams.video[0]
        return {"frames": video.frames, "size": (video.codec_context.width, video.codec_context.height),
                "rate": video.average_rate, "seconds": movie.duration / 1e6,
                "audio": [s.codec_context.name for s in movie.streams.audio]}


def _picture(frame: np.ndarray) -> np.ndarray:
    """The frame below the burn-in band (at 128 px wide the burn-in wraps onto four lines)."""
    return frame[40:, :].astype(int)


def _build(scene, **kwargs) -> animatic.AnimaticResult:
    result = animatic.AnimaticJob(scene, scale=kwargs.pop("scale", 1.0), **kwargs).run()
    assert result.ok, result.message
    return result


@pytest.mark.bpy45
def test_every_shot_in_order_at_its_length_with_takes_playblast_sound_and_burn_ins(scene, tmp_path):
    first, second, third = _project(scene, tmp_path, fps="23.976")
    _give_take(scene, first, {f: RED for f in range(first.frame_start, first.frame_end + 1)})
    _give_take(scene, second, {second.frame_start + 1: GREEN}, size=(64, 36))  # a smaller still, held
    _add_sound(scene, tmp_path)
    result = _build(scene)

    assert result.path == tmp_path / "standin" / "animatic.mp4" and result.joined
    assert [e.source.kind for e in result.edit.events] == ["frames", "still", "playblast"]
    assert result.playblasts_rendered == [third.name] and result.problems == []
    probe = _probe(result.path)
    assert probe["frames"] == 15 and probe["size"] == (128, 72)
    assert probe["rate"] == Fraction(24000, 1001)
    assert probe["seconds"] == pytest.approx(15 * 1001 / 24000, abs=0.03)
    assert probe["audio"] == ["aac"]

    frames = _frames(result.path)
    assert len(frames) == 15
    for index in range(6):
        assert np.abs(_picture(frames[index]) - RED).mean() < 10
    for index in range(6, 10):
        assert np.abs(_picture(frames[index]) - GREEN).mean() < 10
    cached = cv2.imread(str(pathlib.Path(result.edit.events[2].source.folder) / f"{third.frame_start:04d}.jpg"))
    assert np.abs(_picture(frames[10]) - _picture(cached[:, :, ::-1])).mean() < 12
    # burn-ins: the band at the top is not the picture, and it changes every frame (counter, timecode)
    assert np.abs(frames[0][:8].astype(int) - RED).mean() > 40
    assert np.abs(frames[6][:40].astype(int) - frames[7][:40].astype(int)).mean() > 1
    assert np.abs(_picture(frames[6]) - _picture(frames[7])).mean() < 2

    edit_scene = bpy.data.scenes[animatic.EDIT_SCENE]
    pictures = sorted((s for s in edit_scene.sequence_editor.strips if s.type == "IMAGE"),
                      key=lambda s: s.frame_final_start)
    assert [(s.name, s.frame_final_start, s.frame_final_duration) for s in pictures] == \
        [(first.name, 1, 6), (second.name, 7, 4), (third.name, 11, 5)]
    sounds = [s for s in edit_scene.sequence_editor.strips if s.type == "SOUND"]
    assert [(s.frame_final_start, s.frame_final_end, s.frame_offset_start) for s in sounds] == [(1, 16, 0)]
    assert [m.name for m in sorted(edit_scene.timeline_markers, key=lambda m: m.frame)] == \
        [first.name, second.name, third.name]
    assert edit_scene.render.fps == 24 and edit_scene.render.fps_base == pytest.approx(1.001)
    assert scene.render.engine != "BLENDER_WORKBENCH" or scene.render.resolution_x == 128  # settings restored


@pytest.mark.bpy45
def test_rebuild_after_one_shot_changed_renders_only_that_shot(scene, tmp_path):
    first, second, third = _project(scene, tmp_path, durations=(4, 4, 4))
    full = _build(scene)
    assert full.playblasts_rendered == [first.name, second.name, third.name]
    assert full.segments_encoded == [first.name, second.name, third.name]
    assert _probe(full.path)["audio"] == []  # no sound strip, no sound track
    before = _frames(full.path)
    old_folder = pathlib.Path(full.edit.events[1].source.folder)

    second.camera.data.lens = 85.0  # the middle shot changed
    again = _build(scene)
    assert again.playblasts_rendered == [second.name] and again.segments_encoded == [second.name]
    assert again.playblasts_reused == [first.name, third.name]
    after = _frames(again.path)
    assert len(after) == 12
    assert np.abs(after[0].astype(int) - before[0]).mean() < 1  # unchanged shots: the same pictures
    assert np.abs(_picture(after[4]) - _picture(before[4])).mean() > 3  # the changed one is new
    assert not old_folder.exists()  # its stale playblast was thrown away

    unchanged = _build(scene)
    assert unchanged.playblasts_rendered == [] and unchanged.segments_encoded == []


@pytest.mark.bpy45
def test_bad_input_is_reported_and_the_rest_still_builds(scene, tmp_path):
    first, second, third, fourth = _project(scene, tmp_path, durations=(4, 4, 4, 3))
    gone = _give_take(scene, second, {f: GREEN for f in range(second.frame_start, second.frame_end + 1)})
    for path in gone.iterdir():
        path.unlink()
    gone.rmdir()  # the take's media went missing
    third.frame_end = third.frame_start - 1  # zero length
    fourth.frame_start = first.frame_end - 1  # overlaps the first shot
    fourth.frame_end = fourth.frame_start + 2
    result = _build(scene)

    text = "\n".join(result.problems)
    assert f"MISSING — {second.name}: the folder of its take v001" in text
    assert f"{third.name} has no frames" in text and "left out of the animatic" in text
    assert f"{first.name} (frames 1–4) and {fourth.name} (frames 3–5) overlap on frames 3–4" in text
    assert [e.shot for e in result.edit.events] == [first.name, second.name, fourth.name]
    frames = _frames(result.path)
    assert len(frames) == 4 + 4 + 3
    slate = frames[5][28:]
    assert slate.mean() < 90  # dark slate…
    red_text = (slate[:, :, 0] > 140) & (slate[:, :, 1] < 130)
    assert red_text.sum() > 20  # …with the red "MISSING — <shot>" on it
    texts = [s for s in bpy.data.scenes[animatic.EDIT_SCENE].sequence_editor.strips if s.type == "TEXT"]
    assert [t.text for t in texts] == [f"MISSING — {second.name}"]


def test_a_shot_without_camera_gets_a_slate_and_a_piece_that_cannot_join_is_encoded_again(scene, tmp_path):
    first, second = _project(scene, tmp_path, durations=(3, 3))
    bpy.data.objects.remove(second.camera)
    result = _build(scene)
    assert [e.source.kind for e in result.edit.events] == ["playblast", "slate"]
    assert any(f"MISSING — {second.name}: its camera was deleted" in p for p in result.problems)

    # a cached piece in another picture size cannot follow the others: the cut is encoded in one go
    piece = next((tmp_path / "standin" / "animatic" / "cache" / "segments").glob(f"{second.name}-*.mp4"))
    with av.open(str(piece), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((36, 64, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    again = _build(scene)
    assert not again.joined and any("could not be joined" in p for p in again.problems)
    probe = _probe(again.path)
    assert probe["frames"] == 6 and probe["size"] == (128, 72)
    assert not piece.exists()  # the bad piece is forgotten: the next build encodes and joins again
    healed = _build(scene)
    assert healed.joined and healed.segments_encoded == [first.name, second.name]


def test_a_take_clip_plays_holds_its_last_frame_and_gives_the_board_its_middle(scene, tmp_path):
    first, second = _project(scene, tmp_path, durations=(6, 3))
    blue = (30, 60, 220)
    _give_take(scene, first, {}, clip=[RED] * 2 + [blue] * 2)  # a clip of 4 frames for a shot of 6
    result = _build(scene)
    assert result.edit.events[0].source.kind == "clip"
    assert any("has 4 frames for a shot of 6; its last frame is held" in p for p in result.problems)
    frames = _frames(result.path)
    assert len(frames) == 9
    assert [np.abs(_picture(f) - RED).mean() < 12 for f in frames[:2]] == [True, True]
    assert all(np.abs(_picture(f) - blue).mean() < 12 for f in frames[2:6])  # frames 5 and 6 hold the last
    images = animatic.board_images(scene, result.edit)
    middle = cv2.imread(images[first.name])[:, :, ::-1]
    assert np.abs(middle.astype(int) - blue).mean() < 12  # the clip's middle frame, without burn-ins
    assert images[second.name].endswith(".jpg")


def test_cancel_leaves_nothing_half_written(scene, tmp_path):
    first, second = _project(scene, tmp_path, durations=(5, 5))
    engine = scene.render.engine
    job = animatic.AnimaticJob(scene, scale=1.0)
    for _ in range(3):
        assert job.tick()
    assert job.progress.stage == "playblast"
    job.cancel()
    assert job.result.status == "cancelled" and not job.tick()
    cache = tmp_path / "standin" / "animatic" / "cache"
    assert [p.name for p in cache.iterdir() if p.name != "segments"] == []  # no staging, no half playblast
    assert not (tmp_path / "standin" / "animatic.mp4").exists()
    assert scene.render.engine == engine and scene.render.resolution_x == 128


def _standin(*args, timeout=600):
    command = pathlib.Path(sys.executable).with_name("standin")
    return subprocess.run([str(command), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_cli_builds_the_animatic_board_and_otio(scene, tmp_path):
    made = _project(scene, tmp_path, durations=(4, 3, 5))
    _give_take(scene, made[0], {f: RED for f in range(made[0].frame_start, made[0].frame_end + 1)})
    _add_sound(scene, tmp_path, seconds=0.4)
    made[1].notes = "Hold on her eyes."
    bpy.ops.wm.save_mainfile()
    out = tmp_path / "out"
    result = _standin("animatic", tmp_path / "scene.blend", "--out", out / "cut.mp4", "--board", out / "board.pdf",
                      "--otio", out / "cut.otio", "--scale", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"-> {out / 'cut.mp4'}" in result.stdout and "3 shots" in result.stdout
    for line in (f"board: {out / 'board.pdf'}", f"board: {out / 'board.png'}", f"otio: {out / 'cut.otio'}",
                 f"edl: {out / 'cut.edl'}"):
        assert line in result.stdout
    assert "Traceback" not in result.stderr and "Fra:" not in result.stdout
    probe = _probe(out / "cut.mp4")
    assert probe["frames"] == 12 and probe["audio"] == ["aac"]

    otio = pytest.importorskip("opentimelineio")
    timeline = otio.adapters.read_from_file(str(out / "cut.otio"))
    video = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    clips = list(video.find_clips())
    assert [c.name for c in clips] == [s.name for s in made]
    assert [video.range_of_child(c).start_time.value for c in clips] == [0, 4, 7]
    assert [c.source_range.duration.value for c in clips] == [4, 3, 5]
    assert clips[0].metadata["standin"]["take"] == "v001" and clips[0].metadata["standin"]["seed"] == 321
    assert dict(clips[0].metadata["standin"]["prompts"]) == {"prompt": f"{made[0].name} prompt"}
    assert clips[1].metadata["standin"]["source"] == "playblast"
    assert clips[1].metadata["standin"]["lens_mm"] == pytest.approx(made[1].camera.data.lens, abs=0.01)
    assert clips[1].media_reference.target_url_for_image_number(0).endswith(f"{made[1].frame_start:04d}.jpg")
    assert any(t.kind == otio.schema.TrackKind.Audio for t in timeline.tracks)

    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(out / "board.pdf"))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert sum(len(page.images) for page in reader.pages) == 3
    for number, shot in enumerate(made, start=1):
        assert text.count(shot.name) == 1 and f"{number}  {shot.name}" in text and shot.action in text
    assert "Notes: Hold on her eyes." in text and "scene" in text and "16:9" in text

    missing = _standin("animatic", tmp_path / "nope.blend")
    assert missing.returncode == 2 and "is not a file" in missing.stderr


def test_operators_build_and_export_with_the_project_defaults(scene, tmp_path):
    _project(scene, tmp_path, durations=(3, 3))
    assert bpy.ops.standin.animatic_build(scale=1.0) == {"FINISHED"}
    assert pathlib.Path(scene["standin_animatic"]) == tmp_path / "standin" / "animatic.mp4"
    assert _probe(tmp_path / "standin" / "animatic.mp4")["frames"] == 6
    assert bpy.ops.standin.animatic_board(scale=1.0) == {"FINISHED"}
    assert (tmp_path / "standin" / "board.pdf").read_bytes()[:5] == b"%PDF-"
    assert cv2.imread(str(tmp_path / "standin" / "board.png")) is not None
    assert bpy.ops.standin.animatic_otio(scale=1.0, filepath=str(tmp_path / "edit" / "my.otio")) == {"FINISHED"}
    data = json.loads((tmp_path / "edit" / "my.otio").read_text())
    assert data["OTIO_SCHEMA"].startswith("Timeline")
    assert hasattr(bpy.types, "STANDIN_PT_animatic")
