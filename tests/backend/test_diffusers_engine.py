# SPDX-License-Identifier: GPL-3.0-or-later
"""The diffusers engine with tiny random-weight SD 1.5 models, loaded through a models.toml like a user's.

Plate then characters: each character's LoRA alone is active while its region is denoised (observed in
the pipeline's LoRA layers), the frame equals the plate outside every mask, seeds reproduce bytes,
a static camera generates its plate once, cancelling stops the run.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import tiny_diffusion  # noqa: E402

from standin.ai_backend.engine import Cancelled, EngineInputError, JobSpec  # noqa: E402
from standin.ai_backend.models import load_registry  # noqa: E402
from standin.ai_backend.package import ShotPackage  # noqa: E402

STEPS = {"steps": 2}


def characters(mara_lora="mara.safetensors", theo_lora="theo.safetensors"):
    return (
        {"name": "Mara", "pass_index": 1, "color": [0.85, 0.25, 0.2, 1.0], "prompt": "woman in a red raincoat",
         "lora_file": mara_lora, "lora_trigger": "mara" if mara_lora else "", "lora_weight": 0.8,
         "reference_image": ""},
        {"name": "Theo", "pass_index": 2, "color": [0.2, 0.45, 0.85, 1.0], "prompt": "young man, denim jacket",
         "lora_file": theo_lora, "lora_trigger": "", "lora_weight": 1.0, "reference_image": ""},
    )


@pytest.fixture(scope="session")
def models_toml(tmp_path_factory):
    return tiny_diffusion.build_model_folder(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def shared_engine(models_toml):
    import torch

    from standin.ai_backend.engines.diffusers_engine import DiffusersEngine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead (and fight other test processes)
    yield DiffusersEngine(load_registry(models_toml), device="cpu", min_edge=16)
    torch.set_num_threads(threads)


@pytest.fixture
def engine(shared_engine, tmp_path):
    """The module's engine (pipelines stay loaded) with an empty plate cache of its own."""
    shared_engine.cache_dir = tmp_path / "plate-cache"
    shared_engine.forget_plates()
    return shared_engine


def _load(root):
    return ShotPackage.load(root)


def _run(engine, package, out_dir, seed=7, profile="final", progress=None, **options):
    spec = JobSpec(profile=profile, seed=seed, options={**STEPS, **options})
    engine.check(package, spec)
    events = []
    results = engine.run(package, spec, out_dir, progress or events.append)
    return results, events


def _png(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _lora_layers(engine):
    from peft.tuners.tuners_utils import BaseTunerLayer

    pipe = engine._base_pipe
    return [m for model in (pipe.unet, pipe.text_encoder) for m in model.modules() if isinstance(m, BaseTunerLayer)]


def test_each_character_denoised_with_only_its_own_lora(engine, make_package, tmp_path):
    package = _load(make_package(frames=2, characters=characters()))
    results, events = _run(engine, package, tmp_path / "job", plate_cache=False)

    log = engine.adapter_log
    adapters = {name: lora.adapter for name, lora in engine._plan(package, JobSpec(options=STEPS)).loras.items()}
    assert adapters["Mara"] != adapters["Theo"]
    # one observation per denoising step of each character region, taken inside the pipeline's callback
    assert [(u.character, u.frame, u.step) for u in log] == [
        (name, frame, step) for frame in (1, 2) for name in ("Mara", "Theo") for step in (0, 1)]
    for use in log:
        assert use.unet == (adapters[use.character],), use
        assert use.text_encoder == (adapters[use.character],), use
    assert _lora_layers(engine) == []  # LoRAs are unloaded after the job

    # a character without a LoRA is denoised with every adapter disabled, the other keeps its own
    package_one = _load(make_package(frames=1, characters=characters(theo_lora="")))
    _run(engine, package_one, tmp_path / "job-one", plate_cache=False)
    observed = {(u.character, u.unet, u.text_encoder) for u in engine.adapter_log}
    assert observed == {("Mara", ("standin_0",), ("standin_0",)), ("Theo", (), ())}

    # the LoRAs change the characters but never the plate
    plain = _load(make_package(frames=2, characters=characters("", "")))
    _run(engine, plain, tmp_path / "plain", plate_cache=False)
    assert {(u.unet, u.text_encoder) for u in engine.adapter_log} == {((), ())}
    assert np.array_equal(_png(tmp_path / "job/take01/plate/0001.png"), _png(tmp_path / "plain/take01/plate/0001.png"))
    mara = package.mask("Mara", 1)
    with_lora, without = _png(tmp_path / "job/take01/0001.png"), _png(tmp_path / "plain/take01/0001.png")
    assert not np.array_equal(with_lora[mara], without[mara])


def test_frame_equals_plate_outside_every_mask(engine, make_package, tmp_path):
    package = _load(make_package(frames=2, characters=characters()))
    results, events = _run(engine, package, tmp_path / "job")
    assert [(r.path, r.kind) for r in results] == [
        ("take01/0001.png", "frame"), ("take01/plate/0001.png", "plate"),
        ("take01/0002.png", "frame"), ("take01/plate/0002.png", "plate")]
    for frame in package.frames:
        image = _png(tmp_path / "job" / "take01" / f"{frame:04d}.png")
        plate = _png(tmp_path / "job" / "take01" / "plate" / f"{frame:04d}.png")
        assert image.shape == plate.shape == (package.height, package.width, 3)
        inside = np.zeros((package.height, package.width), bool)
        for character in package.characters:
            mask = package.mask(character["name"], frame)
            assert not np.array_equal(image[mask], plate[mask])  # the character was painted in
            inside |= mask
        assert inside.any() and (~inside).any()
        assert np.array_equal(image[~inside], plate[~inside])  # exactly the plate elsewhere

    # progress: one report per denoising step, in order, ending at the total
    steps = [e.step for e in events[1:]]
    assert steps == sorted(steps) and events[-1].step == events[-1].total
    assert {e.message for e in events} >= {"plate", "Mara", "Theo"}


def test_same_seed_same_bytes_other_seed_other_bytes(engine, make_package, tmp_path):
    package = _load(make_package(frames=1, characters=characters()))
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        engine.forget_plates()
        _run(engine, package, tmp_path / name, seed=seed, plate_cache=False)
    read = {name: (tmp_path / name / "take01" / "0001.png").read_bytes() for name in "abc"}
    plates = {name: (tmp_path / name / "take01" / "plate" / "0001.png").read_bytes() for name in "abc"}
    assert read["a"] == read["b"] and plates["a"] == plates["b"]
    assert read["a"] != read["c"] and plates["a"] != plates["c"]

    # each take has its own seeds; take 1 is the same however many takes are asked for
    spec = JobSpec(profile="final", seed=7, takes=2, options={**STEPS, "plate_cache": False})
    results = engine.run(package, spec, tmp_path / "takes", lambda report: None)
    assert [r.path for r in results if r.kind == "frame"] == ["take01/0001.png", "take02/0001.png"]
    assert (tmp_path / "takes/take01/0001.png").read_bytes() == read["a"]
    assert (tmp_path / "takes/take02/0001.png").read_bytes() != read["a"]


def test_plate_generated_once_for_a_static_camera(engine, make_package, tmp_path):
    package = _load(make_package(frames=3, characters=characters("", "")))
    before = engine.plate_generations
    _run(engine, package, tmp_path / "job")
    assert engine.plate_generations - before == 1
    assert [source for _, _, source in engine.plate_log] == ["generated", "memory", "memory"]
    plates = [(tmp_path / "job" / "take01" / "plate" / f"{f:04d}.png").read_bytes() for f in package.frames]
    assert plates[0] == plates[1] == plates[2]
    # characters move each frame, so the frames themselves differ
    frames = [(tmp_path / "job" / "take01" / f"{f:04d}.png").read_bytes() for f in package.frames]
    assert len(set(frames)) == 3

    # a restarted server finds it on disk; the cached plate gives the same bytes as a fresh one
    engine.forget_plates()
    _run(engine, package, tmp_path / "again")
    assert engine.plate_generations - before == 1
    assert [source for _, _, source in engine.plate_log] == ["disk", "memory", "memory"]
    assert (tmp_path / "again/take01/0002.png").read_bytes() == (tmp_path / "job/take01/0002.png").read_bytes()

    # a camera that moves on frame 3 needs a second plate
    moved = package.meta["camera_matrices"]
    moved["3"] = [[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]
    _run(engine, package, tmp_path / "moved")
    assert [source for _, _, source in engine.plate_log] == ["memory", "memory", "generated"]


def test_cancel_from_progress_stops_the_run(engine, make_package, tmp_path):
    package = _load(make_package(frames=3, characters=characters()))
    calls = []

    def progress(report):
        calls.append(report)
        if report.message == "Mara":
            raise Cancelled()

    with pytest.raises(Cancelled):
        _run(engine, package, tmp_path / "job", progress=progress)
    assert calls[-1].message == "Mara" and calls[-1].frame == 1
    assert not (tmp_path / "job" / "take01" / "0001.png").exists()
    assert _lora_layers(engine) == []  # a cancelled job leaves no LoRA behind
    results, _ = _run(engine, package, tmp_path / "next")  # and the engine still works
    assert len(results) == 6


def test_check_refuses_bad_requests(engine, make_package):
    package = _load(make_package(frames=1, characters=characters(theo_lora="nobody.safetensors")))
    with pytest.raises(EngineInputError, match=r"Theo: LoRA 'nobody.safetensors' is not on the server; "
                                               r"available: mara.safetensors, theo.safetensors"):
        engine.check(package, JobSpec(options=STEPS))
    for bad, message in (("../mara.safetensors", r"\.\."), ("mara.ckpt", "convert it to safetensors"),
                         ("/home/me/mara.safetensors", "not a path")):
        package = _load(make_package(frames=1, characters=characters(mara_lora=bad)))
        with pytest.raises(EngineInputError, match=message):
            engine.check(package, JobSpec(options=STEPS))

    package = _load(make_package(frames=1, characters=characters()))
    with pytest.raises(EngineInputError, match="no option 'sharpness'"):
        engine.check(package, JobSpec(options={"sharpness": 2}))
    with pytest.raises(EngineInputError, match="base model 'sdxl' is not on the server; available: tiny-sd15"):
        engine.check(package, JobSpec(options={"base": "sdxl"}))
    with pytest.raises(EngineInputError, match="steps"):
        engine.check(package, JobSpec(options={"steps": 0}))
    with pytest.raises(EngineInputError, match="control_scales"):
        engine.check(package, JobSpec(options={"control_scales": {"depth": "strong"}}))
    with pytest.raises(EngineInputError, match="is a sd15 openpose model, not sd15 depth"):
        engine.check(package, JobSpec(options={"controlnets": {"depth": "tiny-openpose"}}))
    engine.check(package, JobSpec(options={"base": "tiny-sd15", "controlnets": {"depth": "tiny-depth"},
                                           "control_scales": {"canny": 0.2}, "scheduler": "ddim"}))
    for path in package.root.glob("depth_bg/*.png"):
        path.unlink()
    with pytest.raises(EngineInputError, match="depth_bg pass is missing"):
        engine.check(package, JobSpec(options=STEPS))


def test_preview_profile_and_describe(engine, make_package, tmp_path):
    assert engine._generation_size(64, 48, "final", "sd15") == (64, 48)
    assert engine._generation_size(64, 48, "preview", "sd15") == (32, 24)
    assert engine._generation_size(1920, 1080, "final", "sd15") == (1024, 576)
    assert engine._generation_size(1920, 1080, "preview", "sd15") == (512, 288)
    package = _load(make_package(frames=1, characters=characters()))
    results, _ = _run(engine, package, tmp_path / "job", profile="preview")
    image = _png(tmp_path / "job" / results[0].path)
    assert image.shape == (48, 64, 3)  # generated at half size, delivered at the package's size
    inside = package.mask("Mara", 1) | package.mask("Theo", 1)
    plate = _png(tmp_path / "job" / "take01" / "plate" / "0001.png")
    assert np.array_equal(image[~inside], plate[~inside])

    info = engine.describe()
    assert info["device"] == "cpu" and info["torch"] and info["diffusers"]
    assert info["bases"] == [{"name": "tiny-sd15", "family": "sd15", "format": "diffusers"}]
    assert str(engine.registry.root) not in repr(info)


@pytest.fixture(scope="module")
def sdxl_engine(tmp_path_factory):
    from standin.ai_backend.engines.diffusers_engine import DiffusersEngine

    toml = tiny_diffusion.build_sdxl_model_folder(tmp_path_factory.mktemp("tiny-sdxl"))
    return DiffusersEngine(load_registry(toml), device="cpu", min_edge=16,
                           cache_dir=tmp_path_factory.mktemp("sdxl-plates"))


@pytest.mark.parametrize("controlnets, expected", [
    ({}, ["tiny-xl-depth"]),                       # a separate SDXL depth ControlNet when there is one
    ({"union": "tiny-union"}, ["tiny-union"]),     # ControlNet-Union (ProMax) for depth, OpenPose and canny
])
def test_sdxl_with_controlnet_or_union(sdxl_engine, make_package, tmp_path, controlnets, expected):
    package = _load(make_package(frames=2, characters=characters("mara_xl.safetensors", "")))
    spec = JobSpec(profile="final", seed=3, options={**STEPS, "controlnets": controlnets})
    assert [e.name for e in sdxl_engine._plan(package, spec).models] == expected
    sdxl_engine.run(package, spec, tmp_path / "job", lambda report: None)
    inpaint = type(next(iter(sdxl_engine._pipes.values()))[1]).__name__
    assert inpaint == ("StableDiffusionXLControlNetUnionInpaintPipeline" if controlnets
                       else "StableDiffusionXLControlNetInpaintPipeline")
    assert {(u.character, u.unet, u.text_encoder) for u in sdxl_engine.adapter_log} == {
        ("Mara", ("standin_0",), ("standin_0",)), ("Theo", (), ())}
    assert [source for _, _, source in sdxl_engine.plate_log] == ["generated", "memory"]
    for frame in package.frames:
        image = _png(tmp_path / "job" / "take01" / f"{frame:04d}.png")
        plate = _png(tmp_path / "job" / "take01" / "plate" / f"{frame:04d}.png")
        inside = package.mask("Mara", frame) | package.mask("Theo", frame)
        assert np.array_equal(image[~inside], plate[~inside]) and not np.array_equal(image[inside], plate[inside])


def test_lora_for_another_family_is_an_input_error(sdxl_engine, models_toml, make_package, tmp_path):
    import shutil

    loras = sdxl_engine.registry.lora_dirs[0]
    shutil.copy(models_toml.parent / "loras" / "mara.safetensors", loras / "sd15_mara.safetensors")
    package = _load(make_package(frames=1, characters=characters("sd15_mara.safetensors", "")))
    spec = JobSpec(profile="final", seed=3, options=STEPS)
    sdxl_engine.check(package, spec)  # the file exists; whether it fits shows when it loads
    with pytest.raises(EngineInputError, match="Mara: the LoRA 'sd15_mara.safetensors' does not fit base model"):
        sdxl_engine.run(package, spec, tmp_path / "job", lambda report: None)
    assert _lora_layers(sdxl_engine) == []
    package = _load(make_package(frames=1, characters=characters("mara_xl.safetensors", "")))
    assert len(sdxl_engine.run(package, spec, tmp_path / "next", lambda report: None)) == 2
