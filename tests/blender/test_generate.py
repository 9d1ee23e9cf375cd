"""One-click generation from Blender (headless) against a real backend on 127.0.0.1: takes, skips, failures."""

import json
import pathlib
import shutil
import subprocess
import sys
import time

import bpy
import numpy as np
import pytest

from standin.addon import blocking, generation, scene_reader, shots, take_display, takes
from standin.ai_backend.engine import Progress
from standin.ai_backend.engines.sketch import SketchEngine
from standin.ai_backend.local_server import LiveServer
from standin.ai_backend.server import create_app
from standin.operators.characters import add_character

FRAMES = 2


def _block(scene, blend: pathlib.Path):
    """Ada on the left, Ben 8 m to her right; SH0010 on Ada, SH0020 on Ben, SH0030 a wide on both."""
    project = scene.standin.project
    project.aspect = "16:9"
    project.resolution = 128
    blocking.ensure_set(scene, "Yard", prompt="a yard", seed=3)
    blocking.add_piece(scene, "wall", name="Back wall", location=(0, 3.0, 0), length=20.0)
    add_character(scene, "Ada", "a woman in a green coat", color=(0.1, 0.7, 0.2, 1.0), location=(-4, 0, 0))
    add_character(scene, "Ben", "a man in a red coat", color=(0.8, 0.1, 0.1, 1.0), location=(4, 0, 0))
    for size, subjects in (("MCU", ["Ada"]), ("MCU", ["Ben"]), ("EWS", ["Ada", "Ben"])):
        shot = shots.add_shot(scene, duration=FRAMES)
        shot.shot_size = size
        shot.variant = "TWO_SHOT" if len(subjects) == 2 else "SINGLE"
        for name in subjects:
            shot.subjects.add().name = name
        shots.frame_shot(scene, shot)
    blend.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    return [s.name for s in scene.standin.shots]


class SlowSketch(SketchEngine):
    """The sketch engine, slowed down so a test can cancel it mid-job."""

    def run(self, package, spec, out_dir, progress):
        def slow(update: Progress):
            time.sleep(0.3)
            progress(update)

        return super().run(package, spec, out_dir, slow)


@pytest.fixture
def backend(tmp_path):
    server = LiveServer(create_app(SketchEngine(), tmp_path / "backend"))
    yield server
    generation.close_workers()
    server.stop()


@pytest.fixture
def blocked(scene, tmp_path, backend):
    names = _block(scene, tmp_path / "project" / "scene.blend")
    scene.standin.project.backend_url = backend.url
    return scene, names


def _generate(scene, names, **kwargs):
    return generation.GenerationBatch(scene, names, **kwargs).run(timeout=120)


@pytest.mark.bpy45
def test_one_shot_becomes_a_take_with_its_record(blocked, tmp_path):
    scene, names = blocked
    summary = _generate(scene, names[:1])
    assert summary.generated == names[:1], summary.messages
    shot = scene.standin.shots[names[0]]
    take = shot.active_take
    assert take.name == "v001" and take.folder.startswith("//")
    folder = tmp_path / "project" / "standin" / shot.name / "v001"
    assert pathlib.Path(bpy.path.abspath(take.folder)).resolve() == folder.resolve()
    record = takes.read_take(folder)
    assert record.frames == list(range(shot.frame_start, shot.frame_end + 1))
    assert sorted(p.name for p in folder.glob("*.png")) == [f"{f:04d}.png" for f in record.frames]
    assert (record.engine, record.profile, record.seed) == ("sketch", "preview", shot.seed)
    assert record.prompts["characters"] == {"Ada": "a woman in a green coat"}
    assert take.engine == "sketch" and take.created and take.inputs_hash == record.inputs_hash
    assert shot.generation == "DONE" and shot.status == "GENERATED" and not shot.job_id
    # the camera shows the take behind the stand-ins, opacity from the project
    backgrounds = [b for b in shot.camera.data.background_images if b.image is not None]
    assert [b.image.name for b in backgrounds] == [take_display.image_name(shot.name)]
    assert backgrounds[0].alpha == pytest.approx(scene.standin.project.take_opacity)
    scene.standin.project.take_opacity = 0.25
    assert backgrounds[0].alpha == pytest.approx(0.25)
    # the picture is the sketch engine's, not an empty file
    image = backgrounds[0].image
    first = pathlib.Path(bpy.path.abspath(image.filepath))
    assert first == folder / f"{shot.frame_start:04d}.png" or first.resolve() == (folder / f"{shot.frame_start:04d}.png").resolve()
    assert image.source == "SEQUENCE" and backgrounds[0].image_user.frame_start == shot.frame_start
    still = bpy.data.images.load(str(first))
    assert tuple(still.size) == (record.width, record.height) == (128, 72)
    pixels = np.array(still.pixels[:]).reshape(72, 128, 4)
    assert pixels[..., :3].std() > 0.05  # a drawing, not a flat frame


@pytest.mark.bpy45
def test_generate_all_skips_unchanged_shots_and_redoes_those_that_see_a_moved_stand_in(blocked):
    scene, names = blocked
    first = _generate(scene, names)
    assert sorted(first.generated) == sorted(names), first.messages
    again = _generate(scene, names)
    assert again.generated == [] and sorted(again.skipped) == sorted(names)

    ben = scene.standin.cast["Ben"].stand_in
    ben.location.x += 0.3
    after_move = _generate(scene, names)
    assert sorted(after_move.generated) == sorted([names[1], names[2]])  # the shots that see Ben
    assert after_move.skipped == [names[0]]
    assert [t.name for t in scene.standin.shots[names[1]].takes] == ["v001", "v002"]
    assert [t.name for t in scene.standin.shots[names[0]].takes] == ["v001"]


def test_prompt_seed_and_profile_changes_regenerate_only_that_shot(blocked):
    scene, names = blocked
    _generate(scene, names[:2])
    scene.standin.shots[names[0]].action = "Ada looks up"
    summary = _generate(scene, names[:2])
    assert summary.generated == [names[0]] and summary.skipped == [names[1]]
    scene.standin.shots[names[1]].seed = 99
    assert _generate(scene, names[:2]).generated == [names[1]]
    assert sorted(_generate(scene, names[:2], profile="final").generated) == sorted(names[:2])


def test_variations_give_one_take_per_seed(blocked):
    scene, names = blocked
    shot = scene.standin.shots[names[0]]
    shot.seed = 40
    summary = _generate(scene, names[:1], variations=3)
    assert summary.generated == names[:1]
    assert [(t.name, t.seed) for t in shot.takes] == [("v001", 40), ("v002", 41), ("v003", 42)]
    pictures = [np.array(bpy.data.images.load(str(next(iter(takes.frame_files(
        pathlib.Path(bpy.path.abspath(t.folder))).values())))).pixels[:]) for t in shot.takes]
    assert not np.array_equal(pictures[0], pictures[1])  # each seed its own pencil


def test_backend_down_fails_the_shot_and_keeps_its_takes(blocked):
    scene, names = blocked
    _generate(scene, names[:1])
    shot = scene.standin.shots[names[0]]
    shot.action = "changed, so it would generate again"
    scene.standin.project.backend_url = "http://127.0.0.1:9"  # nothing listens there
    summary = _generate(scene, names[:1])
    assert summary.failed == names[:1] and not summary.ok
    assert shot.generation == "FAILED"
    assert "no StandIn backend" in shot.job_message
    assert [t.name for t in shot.takes] == ["v001"] and shot.active_take.name == "v001"


def test_cancel_stops_the_backend_job_and_records_nothing(scene, tmp_path):
    names = _block(scene, tmp_path / "project" / "scene.blend")
    server = LiveServer(create_app(SlowSketch(), tmp_path / "backend"))
    try:
        scene.standin.project.backend_url = server.url
        shot = scene.standin.shots[names[0]]
        shot.frame_end = shot.frame_start + 5
        batch = generation.GenerationBatch(scene, names[:1])
        deadline = time.monotonic() + 60
        while shot.generation != "RUNNING":
            assert batch.step() and time.monotonic() < deadline
            time.sleep(0.02)
        job_id = shot.job_id
        batch.cancel()
        while batch.step():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert batch.summary.cancelled == names[:1]
        assert shot.generation == "CANCELLED" and len(shot.takes) == 0
        import httpx

        answer = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
        assert answer["state"] == "cancelled", answer
        assert not list((tmp_path / "project" / "standin" / shot.name).glob("v*"))
    finally:
        generation.close_workers()
        server.stop()


@pytest.mark.bpy45
def test_a_reopened_file_picks_up_its_job_or_marks_it_lost(scene, tmp_path):
    blend = tmp_path / "project" / "scene.blend"
    names = _block(scene, blend)
    server = LiveServer(create_app(SlowSketch(), tmp_path / "backend"))
    try:
        scene.standin.project.backend_url = server.url
        batch = generation.GenerationBatch(scene, names[:2])
        deadline = time.monotonic() + 90
        while not scene.standin.shots[names[0]].job_id:
            assert batch.step() and time.monotonic() < deadline
            time.sleep(0.01)
        second = scene.standin.shots[names[1]]  # waits its turn in this Blender: not on the backend yet
        assert second.generation == "QUEUED" and not second.job_id
        third = scene.standin.shots[names[2]]  # as if its job were on a backend that has forgotten it
        third.generation, third.job_id, third.job_backend = "RUNNING", "0" * 32, server.url
        first_request = json.loads(scene.standin.shots[names[0]].job_request)
        third.job_request = json.dumps({**first_request, "job_id": "0" * 32,
                                        "shot_dir": str(tmp_path / "project" / "standin" / third.name)})
        bpy.ops.wm.save_mainfile()
        generation.close_workers()  # "Blender closed" with both jobs in flight

        bpy.ops.wm.open_mainfile(filepath=str(blend))  # load_post resumes them
        scene = bpy.context.scene
        while generation.apply_worker_updates():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first, second, third = (scene.standin.shots[n] for n in names)
        assert first.generation == "DONE" and first.active_take.name == "v001"
        assert second.generation == "LOST" and "generate it again" in second.job_message
        assert third.generation == "LOST" and len(third.takes) == 0 and third.job_message
    finally:
        generation.close_workers()
        server.stop()


def test_moving_the_project_folder_keeps_every_take(blocked, tmp_path):
    scene, names = blocked
    _generate(scene, names[:1])
    bpy.ops.wm.save_mainfile()
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "project"), str(moved))
    bpy.ops.wm.open_mainfile(filepath=str(moved / "scene.blend"))
    shot = bpy.context.scene.standin.shots[names[0]]
    folder = pathlib.Path(bpy.path.abspath(shot.active_take.folder))
    assert folder.is_relative_to(moved) and takes.read_take(folder) is not None
    image = take_display.load_take_image(shot)
    first = pathlib.Path(bpy.path.abspath(image.filepath))
    assert first.is_relative_to(moved) and first.is_file()


def test_the_view_test_keeps_other_shots_hashes(blocked):
    scene, names = blocked
    ada_shot, ben_shot, wide = (scene.standin.shots[n] for n in names)
    before = {n: scene_reader.read_shot(scene, scene.standin.shots[n]).render_hash() for n in names}
    assert [c.name for c in scene_reader.read_shot(scene, ada_shot).characters] == ["Ada"]
    scene.standin.cast["Ben"].stand_in.location.z += 0.2
    after = {n: scene_reader.read_shot(scene, scene.standin.shots[n]).render_hash() for n in names}
    assert before[names[0]] == after[names[0]]
    assert before[names[1]] != after[names[1]] and before[names[2]] != after[names[2]]


@pytest.mark.bpy45
def test_operators_generate_pick_and_star_takes(blocked):
    scene, names = blocked
    scene.standin.shot_index = 0
    assert bpy.ops.standin.generate() == {"FINISHED"}
    assert bpy.ops.standin.generate(new_seed=True) == {"FINISHED"}  # reroll: a new seed, a new take
    shot = scene.standin.shots[names[0]]
    assert [t.name for t in shot.takes] == ["v001", "v002"] and shot.takes[0].seed != shot.takes[1].seed
    assert bpy.ops.standin.take_activate(index=0) == {"FINISHED"}
    assert shot.active_take.name == "v001" and shot.seed == shot.takes[0].seed
    assert bpy.ops.standin.take_star() == {"FINISHED"} and shot.takes[0].starred
    assert bpy.ops.standin.backend_test() == {"FINISHED"}


def test_unsaved_file_and_backend_errors_are_reports_not_tracebacks(scene, backend):
    scene.standin.project.resolution = 128
    add_character(scene, "Ada", location=(0, 0, 0))
    shot = shots.add_shot(scene, duration=FRAMES)
    shot.subjects.add().name = "Ada"
    shots.frame_shot(scene, shot)
    with pytest.raises(RuntimeError, match="Save the .blend first"):
        bpy.ops.standin.generate()
    assert shot.generation == "NONE" and len(shot.takes) == 0
    scene.standin.project.backend_url = "http://127.0.0.1:9"
    with pytest.raises(RuntimeError, match="no StandIn backend"):
        bpy.ops.standin.backend_test()


def test_cli_generate_with_the_sketch_engine(scene, tmp_path):
    blend = tmp_path / "project" / "scene.blend"
    names = _block(scene, blend)
    command = [sys.executable, "-m", "standin.cli", "generate", str(blend), "--engine", "sketch", "--shot", names[0]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{names[0]}: v001" in done.stdout
    assert takes.read_take(tmp_path / "project" / "standin" / names[0] / "v001") is not None
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert bpy.context.scene.standin.shots[names[0]].active_take.name == "v001"

    down = subprocess.run([sys.executable, "-m", "standin.cli", "generate", str(blend), "--backend",
                           "http://127.0.0.1:9", "--all"], capture_output=True, text=True, timeout=300)
    assert down.returncode == 1
    assert "no StandIn backend" in down.stderr
    assert "Traceback" not in down.stderr


def test_start_local_backend_points_the_project_at_it_and_stops(scene):
    from standin.addon import local_backend

    try:
        assert bpy.ops.standin.backend_start() == {"FINISHED"}
        url = scene.standin.project.backend_url
        assert url == local_backend.shared().url and url.startswith("http://127.0.0.1:")
        assert bpy.ops.standin.backend_test() == {"FINISHED"}
        assert bpy.ops.standin.backend_stop() == {"FINISHED"}
        assert not local_backend.shared().running
        with pytest.raises(RuntimeError, match="no StandIn backend"):
            bpy.ops.standin.backend_test()
    finally:
        local_backend.shared().stop()


def test_generate_with_the_diffusers_engine_and_tiny_models(scene, tmp_path):
    """The same button against the diffusers engine: a plate, each character inpainted with its LoRA."""
    pytest.importorskip("diffusers")
    import tiny_diffusion
    import torch

    from standin.ai_backend.engines.diffusers_engine import DiffusersEngine
    from standin.ai_backend.models import load_registry

    names = _block(scene, tmp_path / "project" / "scene.blend")
    scene.standin.project.resolution = 64
    ada = scene.standin.cast["Ada"]
    ada.lora_trigger = "mara"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    registry = load_registry(tiny_diffusion.build_model_folder(tmp_path / "models"))
    engine = DiffusersEngine(registry, device="cpu", min_edge=16)
    server = LiveServer(create_app(engine, tmp_path / "backend", models=registry))
    try:
        scene.standin.project.backend_url = server.url
        # the cast's LoRA field offers what the backend lists
        assert bpy.ops.standin.backend_test() == {"FINISHED"}
        scene.standin.cast_index = 0
        assert bpy.ops.standin.pick_model(kind="LORA", name="mara.safetensors") == {"FINISHED"}
        assert bpy.ops.standin.pick_model(kind="BASE", name="tiny-sd15") == {"FINISHED"}
        assert scene.standin.project.base_model == "tiny-sd15"
        shot = scene.standin.shots[names[0]]
        shot.frame_end = shot.frame_start  # one frame keeps the CPU run short
        assert ada.lora_file == "mara.safetensors"
        summary = _generate(scene, [shot.name], profile="final",
                            options={**generation.project_options(scene), "steps": 2})
        assert summary.generated == [shot.name], summary.messages
        take = shot.active_take
        record = takes.read_take(pathlib.Path(bpy.path.abspath(take.folder)))
        assert record.engine == "diffusers" and record.frames == [shot.frame_start]
        assert record.loras == [{"character": "Ada", "file": "mara.safetensors", "trigger": "mara", "weight":
                                 pytest.approx(ada.lora_weight)}]
        assert "mara.safetensors" in take.loras and take.model == "tiny-sd15" == record.model
        ada_steps = [use for use in engine.adapter_log if use.character == "Ada"]
        plate_steps = [use for use in engine.adapter_log if use.character is None]
        assert ada_steps and all(len(use.unet) == 1 for use in ada_steps)  # her LoRA, and only it
        assert plate_steps and all(use.unet == () for use in plate_steps)  # the plate: no character LoRA
        again = _generate(scene, [shot.name], profile="final",
                          options={**generation.project_options(scene), "steps": 2})
        assert again.skipped == [shot.name]
    finally:
        torch.set_num_threads(threads)
        generation.close_workers()
        server.stop()


@pytest.mark.bpy45
@pytest.mark.parametrize("kind, shift", [("PERSP", 0.0), ("PERSP", 0.2), ("ORTHO", 0.1)])
def test_the_camera_view_maps_points_like_blenders_world_to_camera_view(scene, kind, shift):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene.render.resolution_x, scene.render.resolution_y = 320, 134
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    camera.data.type, camera.data.shift_x, camera.data.ortho_scale = kind, shift, 6.0
    camera.location, camera.rotation_euler = (1.0, -6.0, 1.6), (1.45, 0.0, 0.2)
    bpy.context.view_layer.update()
    points = np.random.default_rng(3).uniform(-5, 5, size=(200, 3))
    ours = scene_reader.CameraView(scene, camera).project(points)
    theirs = np.array([tuple(world_to_camera_view(scene, camera, Vector(p))) for p in points])
    in_front = theirs[:, 2] > 1e-6
    assert in_front.sum() > 50
    np.testing.assert_allclose(ours[in_front], theirs[in_front], rtol=1e-6, atol=1e-6)


def test_renaming_a_shot_takes_its_passes_and_takes_along(blocked, tmp_path):
    scene, names = blocked
    _generate(scene, names[:1])
    shot = scene.standin.shots[names[0]]
    old_folder = tmp_path / "project" / "standin" / names[0]
    shots.rename_shot(scene, names[0], "SQ010_SH0005")
    new_folder = tmp_path / "project" / "standin" / "SQ010_SH0005"
    assert not old_folder.exists() and (new_folder / "v001" / "take.json").is_file()
    assert shot.active_take.folder == "//standin/SQ010_SH0005/v001/" or \
        pathlib.Path(bpy.path.abspath(shot.active_take.folder)).resolve() == (new_folder / "v001").resolve()
    background = [b for b in shot.camera.data.background_images if b.image is not None][0]
    assert background.image.name == take_display.image_name("SQ010_SH0005")
    assert pathlib.Path(bpy.path.abspath(background.image.filepath)).resolve().parent == (new_folder / "v001").resolve()
    again = _generate(scene, ["SQ010_SH0005"])  # only the name changed: no new take
    assert again.skipped == ["SQ010_SH0005"], again.messages
    package = json.loads((new_folder / "passes" / "shot.json").read_text())
    assert package["shot"] == "SQ010_SH0005"  # the package follows the name without a render


def test_progress_reads_passes_then_the_backends_steps(scene, tmp_path):
    names = _block(scene, tmp_path / "project" / "scene.blend")
    server = LiveServer(create_app(SlowSketch(), tmp_path / "backend"))
    try:
        scene.standin.project.backend_url = server.url
        batch = generation.GenerationBatch(scene, names[:1])
        batch.step()
        done, total, what = batch.progress
        assert what.startswith(f"passes {names[0]}") and 0 < done <= total and total >= FRAMES  # frames + background
        deadline = time.monotonic() + 60
        shot = scene.standin.shots[names[0]]
        while shot.generation != "RUNNING" or not shot.job_total:
            assert batch.step() and time.monotonic() < deadline
            time.sleep(0.02)
        done, total, what = batch.progress
        assert what.startswith(f"{names[0]} step ") and total == FRAMES and done <= total
        batch.cancel()
        while batch.step():
            time.sleep(0.02)
        assert batch.finished and batch not in generation.running_batches()
    finally:
        generation.close_workers()
        server.stop()
