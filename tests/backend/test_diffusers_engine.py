# SPDX-License-Identifier: GPL-3.0-or-later
"""The diffusers engine with tiny random-weight SD 1.5 models, loaded through a models.toml like a user's.

Plate then characters: each character's LoRA alone is active while its region is denoised (observed in
the pipeline's LoRA layers), a bit part gets the IP-Adapter with its reference image and nobody else
does (observed in the UNet's inputs), the frame equals the plate outside every mask, seeds reproduce
bytes, a static camera generates its plate once, cancelling stops the run, previews use the base's
few-step LoRA and tiny autoencoder when configured.
"""

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("diffusers")
pytest.importorskip("peft")

import tiny_diffusion  # noqa: E402

from standin.ai_backend.engine import Cancelled, EngineInputError, JobSpec  # noqa: E402
from standin.ai_backend.models import load_registry, safetensors_keys  # noqa: E402
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


def _give_reference(root, name="Theo", seed=0):
    """Give ``name`` a reference image in the package, as the add-on writes it (reference/<name>.png)."""
    pixels = np.random.RandomState(seed).randint(0, 256, (40, 30, 3), np.uint8)
    (root / "reference").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "reference" / f"{name}.png"), pixels)
    meta = json.loads((root / "shot.json").read_text())
    for character in meta["characters"]:
        if character["name"] == name:
            character["reference"] = f"reference/{name}.png"
    (root / "shot.json").write_text(json.dumps(meta))
    return root


class UNetCalls:
    """Records, for every call of a UNet, the largest magnitude of the IP-Adapter image embeddings it was
    given (None: no IP-Adapter input at all) — what reaches the model, not what the engine meant to send."""

    def __init__(self, unet):
        self.embeds: list[float | None] = []
        self._handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        given = (kwargs.get("added_cond_kwargs") or {}).get("image_embeds")
        self.embeds.append(None if given is None else max(float(e.abs().max()) for e in given))

    def close(self):
        self._handle.remove()


def _outside_masks_is_plate(root, package, frame):
    image = _png(root / "take01" / f"{frame:04d}.png")
    plate = _png(root / "take01" / "plate" / f"{frame:04d}.png")
    inside = np.zeros((package.height, package.width), bool)
    for character in package.characters:
        inside |= package.mask(character["name"], frame)
    return np.array_equal(image[~inside], plate[~inside])


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
    # one observation per denoising step of the plate and of each character region, taken inside the
    # pipeline's callback
    assert [(u.character, u.frame, u.step) for u in log] == [
        (name, frame, step) for frame in (1, 2) for name in (None, "Mara", "Theo") for step in (0, 1)]
    for use in log:
        expected = (adapters[use.character],) if use.character else ()  # the plate: the set alone, no LoRA
        assert use.unet == expected and use.text_encoder == expected and use.ip_adapter == 0, use
    assert _lora_layers(engine) == []  # LoRAs are unloaded after the job

    # a character without a LoRA is denoised with every adapter disabled, the other keeps its own
    package_one = _load(make_package(frames=1, characters=characters(theo_lora="")))
    _run(engine, package_one, tmp_path / "job-one", plate_cache=False)
    observed = {(u.character, u.unet, u.text_encoder) for u in engine.adapter_log}
    assert observed == {(None, (), ()), ("Mara", ("standin_0",), ("standin_0",)), ("Theo", (), ())}

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
                                               r"available: fast.safetensors, mara.safetensors, theo.safetensors"):
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
        (None, (), ()), ("Mara", ("standin_0",), ("standin_0",)), ("Theo", (), ())}
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


def test_a_bit_part_is_inpainted_with_the_ip_adapter_and_nobody_else(engine, make_package, tmp_path):
    # Mara has her LoRA; Theo is a bit part: no LoRA, a reference image
    package = _load(_give_reference(make_package(frames=2, characters=characters(theo_lora=""))))
    assert package.reference("Theo").shape == (40, 30, 3)
    plan = engine._plan(package, JobSpec(options=STEPS))
    assert plan.ip_adapter.entry.name == "ip-adapter_tiny_sd15.safetensors"  # the only one: the default
    assert plan.ip_adapter.image_encoder.name == "tiny-clip-vision.safetensors"
    assert list(plan.ip_adapter.references) == ["Theo"]

    unet = engine._load_base(plan.base).unet
    calls = UNetCalls(unet)
    try:
        _run(engine, package, tmp_path / "job", plate_cache=False, ip_adapter_scale=1.0)
    finally:
        calls.close()
    log = engine.adapter_log
    # one UNet call per logged step (classifier-free guidance runs in one batch), in the same order
    assert len(calls.embeds) == len(log) == 2 * 3 * 2
    for use, embeds in zip(log, calls.embeds):
        if use.character == "Theo":  # the IP-Adapter is on, fed Theo's reference, no LoRA
            assert use.ip_adapter == 1.0 and embeds > 0 and use.unet == use.text_encoder == (), use
        else:  # the plate and Mara: IP-Adapter scale 0, zero image embeddings; Mara has only her LoRA
            assert use.ip_adapter == 0 and embeds == 0, use
            assert use.unet == use.text_encoder == (("standin_0",) if use.character == "Mara" else ()), use
    # unloaded after the job: the UNet is as it was, ready for jobs without bit parts
    assert unet.encoder_hid_proj is None and not any(hasattr(p, "to_k_ip") for p in unet.attn_processors.values())
    assert all(pipe.image_encoder is None for pipe in next(iter(engine._pipes.values())))
    assert _lora_layers(engine) == []

    # the same package without Theo's reference: the plate and Mara are the same bytes (scale 0 is an
    # exact no-op), Theo's region is not; outside the masks each frame is the plate
    plain = _load(make_package(frames=2, characters=characters(theo_lora="")))
    calls = UNetCalls(unet)
    try:
        _run(engine, plain, tmp_path / "plain", plate_cache=False)
    finally:
        calls.close()
    assert set(calls.embeds) == {None}  # no IP-Adapter input at all without a bit part
    for frame in package.frames:
        assert _outside_masks_is_plate(tmp_path / "job", package, frame)
        name = f"take01/{frame:04d}.png"
        with_ip, without = _png(tmp_path / "job" / name), _png(tmp_path / "plain" / name)
        assert (tmp_path / "job/take01/plate" / name[7:]).read_bytes() == \
            (tmp_path / "plain/take01/plate" / name[7:]).read_bytes()
        assert np.array_equal(with_ip[package.mask("Mara", frame)], without[package.mask("Mara", frame)])
        assert not np.array_equal(with_ip[package.mask("Theo", frame)], without[package.mask("Theo", frame)])

    # the same seed reproduces the bytes with the IP-Adapter too
    _run(engine, package, tmp_path / "again", plate_cache=False, ip_adapter_scale=1.0)
    assert (tmp_path / "again/take01/0002.png").read_bytes() == (tmp_path / "job/take01/0002.png").read_bytes()


def test_bit_parts_need_an_ip_adapter_that_fits(engine, sdxl_engine, make_package):
    package = _load(_give_reference(make_package(frames=1, characters=characters("mara_xl.safetensors", ""))))
    with pytest.raises(EngineInputError, match=r"Theo is a bit part \(a reference image and no LoRA\), but no sdxl "
                                               r"IP-Adapter is configured: add one .* \[ip_adapters\] dirs of "
                                               r"models.toml.*or give Theo a LoRA"):
        sdxl_engine.check(package, JobSpec(options=STEPS))
    package = _load(_give_reference(make_package(frames=1, characters=characters(theo_lora=""))))
    with pytest.raises(EngineInputError, match="IP-Adapter 'face.safetensors' is not on the server; "
                                               "available: ip-adapter_tiny_sd15.safetensors"):
        engine.check(package, JobSpec(options={"ip_adapter": "face.safetensors"}))
    with pytest.raises(EngineInputError, match="ip_adapter_scale must be a number from 0 to 2"):
        engine.check(package, JobSpec(options={"ip_adapter_scale": 5}))
    # a reference next to a LoRA: the LoRA wins, no IP-Adapter is needed
    package = _load(_give_reference(make_package(frames=1, characters=characters()), "Mara"))
    assert engine._plan(package, JobSpec(options=STEPS)).ip_adapter is None


PREVIEW_TOML = """\
[[base]]
name = "tiny-sd15-fast"
path = "bases/tiny-sd15"
preview_lora = "fast.safetensors"
preview_lora_weight = 0.7
preview_scheduler = "lcm"
preview_vae = "taesd"

[[controlnet]]
name = "tiny-depth"
path = "controlnet/tiny-depth"
control = "depth"

[loras]
dirs = ["loras"]
"""


def test_preview_uses_the_few_step_lora_and_tiny_autoencoder_final_never(models_toml, make_package, tmp_path):
    import torch

    from standin.ai_backend.engines.diffusers_engine import DiffusersEngine

    toml = models_toml.parent / "models-preview.toml"
    toml.write_text(PREVIEW_TOML)
    engine = DiffusersEngine(load_registry(toml), device="cpu", min_edge=16, cache_dir=tmp_path / "plates")
    package = _load(make_package(frames=1, characters=characters(theo_lora="")))
    plan = engine._plan(package, JobSpec(profile="preview"))
    assert (plan.steps, plan.guidance, plan.scheduler) == (4, 1.0, "lcm")  # few-step defaults
    final_plan = engine._plan(package, JobSpec(profile="final"))
    assert (final_plan.steps, final_plan.scheduler, final_plan.preview_lora, final_plan.vae) == (
        28, "dpm++", None, None)

    def preview(name):
        spec = JobSpec(profile="preview", seed=5, options={"plate_cache": False})
        engine.run(package, spec, tmp_path / name, lambda report: None)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        preview("preview")
        full_vae = engine._base_pipe.vae
        tiny_vae = next(iter(engine._vaes.values()))
        plate_pipe, inpaint = next(iter(engine._pipes.values()))
        assert type(inpaint.vae).__name__ == type(plate_pipe.vae).__name__ == "AutoencoderTiny"
        assert type(inpaint.scheduler).__name__ == "LCMScheduler"
        # the few-step LoRA is active for the plate and every region, beside a character's own LoRA
        assert [(u.character, u.step) for u in engine.adapter_log] == [
            (who, step) for who in (None, "Mara", "Theo") for step in range(4)]
        assert {(u.character, u.unet, u.text_encoder) for u in engine.adapter_log} == {
            (None, ("standin_preview",), ("standin_preview",)),
            ("Mara", ("standin_0", "standin_preview"), ("standin_0", "standin_preview")),
            ("Theo", ("standin_preview",), ("standin_preview",))}

        used = {"full": 0, "tiny": 0}
        hooks = [module.register_forward_hook(lambda *a, which=which: used.__setitem__(which, used[which] + 1))
                 for which, vae in (("full", full_vae), ("tiny", tiny_vae)) for module in (vae.encoder, vae.decoder)]
        try:
            preview("again")  # the same seed: the same bytes; only the tiny autoencoder encodes and decodes
            assert used["full"] == 0 and used["tiny"] > 0
            assert (tmp_path / "again/take01/0001.png").read_bytes() == \
                (tmp_path / "preview/take01/0001.png").read_bytes()
            used.update(full=0, tiny=0)
            engine.run(package, JobSpec(profile="final", seed=5, options={**STEPS, "plate_cache": False}),
                       tmp_path / "final", lambda report: None)
            assert used["tiny"] == 0 and used["full"] > 0
        finally:
            for hook in hooks:
                hook.remove()
    finally:
        torch.set_num_threads(threads)
    plate_pipe, inpaint = next(iter(engine._pipes.values()))
    assert type(inpaint.vae).__name__ == "AutoencoderKL" and type(inpaint.scheduler).__name__ != "LCMScheduler"
    assert {(u.character, u.unet) for u in engine.adapter_log} == {(None, ()), ("Mara", ("standin_0",)), ("Theo", ())}
    assert _outside_masks_is_plate(tmp_path / "preview", package, 1)


SINGLE_FILE_TOML = """\
comfyui_root = "comfy"

[single_file_configs]
sd15 = "configs/tiny-sd15"

[[base]]
name = "tiny-single"
path = "comfy/checkpoints/tiny-sd15.safetensors"
config = "configs/tiny-sd15"

[[controlnet]]
name = "tiny-depth"
path = "controlnet/tiny-depth"
control = "depth"

[[controlnet]]
name = "tiny-openpose"
path = "controlnet/tiny-openpose"
control = "openpose"

[[controlnet]]
name = "tiny-canny"
path = "controlnet/tiny-canny"
control = "canny"

[loras]
dirs = ["loras"]
"""


def test_a_single_file_checkpoint_from_a_comfyui_folder_runs_a_job(engine, models_toml, make_package, tmp_path):
    """The tiny base saved as ONE .safetensors in the original LDM layout, found in ComfyUI's checkpoints/
    with configs (no weights) from a diffusers folder: the job's bytes equal the diffusers folder's."""
    from diffusers import StableDiffusionPipeline

    from standin.ai_backend.engines.diffusers_engine import DiffusersEngine

    folder = models_toml.parent
    diffusers_base = StableDiffusionPipeline.from_pretrained(str(folder / "bases" / "tiny-sd15"), local_files_only=True)
    checkpoint = tiny_diffusion.save_single_file_sd15(diffusers_base,
                                                      folder / "comfy" / "checkpoints" / "tiny-sd15.safetensors")
    assert not any(k.startswith(("unet.", "vae.")) for k in safetensors_keys(checkpoint))  # the LDM layout
    (folder / "comfy/checkpoints/old.ckpt").write_bytes(b"pickle")
    tiny_diffusion.copy_configs(folder / "bases" / "tiny-sd15", folder / "configs" / "tiny-sd15")
    assert not list((folder / "configs").rglob("*.safetensors"))  # the weights can only come from the checkpoint
    toml = folder / "models-single.toml"
    toml.write_text(SINGLE_FILE_TOML)
    registry = load_registry(toml)
    assert [b.public() for b in registry.bases] == [
        {"name": "tiny-single", "family": "sd15", "format": "single-file"},
        {"name": "tiny-sd15.safetensors", "family": "sd15", "format": "single-file"}]
    assert registry.resolve_base("tiny-sd15.safetensors").config == (folder / "configs" / "tiny-sd15").resolve()

    single = DiffusersEngine(registry, device="cpu", min_edge=16, cache_dir=tmp_path / "plates")
    package = _load(make_package(frames=1, characters=characters(theo_lora="")))
    with pytest.raises(EngineInputError, match=r"'old.ckpt' is a pickle file \(.ckpt\).*convert it to safetensors"):
        single.check(package, JobSpec(options={"base": "old.ckpt"}))
    options = {"base": "tiny-sd15.safetensors", "plate_cache": False}
    _run(single, package, tmp_path / "single", **options)
    assert type(single._base_pipe.unet).__name__ == "UNet2DConditionModel"
    assert {(u.character, u.unet) for u in single.adapter_log} == {(None, ()), ("Mara", ("standin_0",)), ("Theo", ())}
    assert _outside_masks_is_plate(tmp_path / "single", package, 1)
    _run(engine, package, tmp_path / "folder", plate_cache=False)  # the same weights from the diffusers folder
    for name in ("take01/0001.png", "take01/plate/0001.png"):
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "folder" / name).read_bytes()


def test_plate_disk_cache_keeps_the_most_recently_used_within_its_size(tmp_path):
    from standin.ai_backend.engines.diffusers_engine import trim_plate_cache

    cache = tmp_path / "plate-cache"
    cache.mkdir()
    for age, name in enumerate("abcd"):  # a is the newest, d the oldest
        path = cache / f"{name}.png"
        path.write_bytes(bytes(100))
        os.utime(path, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    (cache / ".e.png.123.tmp.png").write_bytes(bytes(1000))  # a plate being written is not counted or touched
    os.utime(cache / "d.png")  # d was just used (a cache hit touches its file)
    deleted = trim_plate_cache(cache, 250)
    assert [p.name for p in deleted] == ["c.png", "b.png"]
    assert sorted(p.name for p in cache.iterdir()) == [".e.png.123.tmp.png", "a.png", "d.png"]
    assert trim_plate_cache(cache, 200) == []
    assert [p.name for p in trim_plate_cache(cache, 0)] == ["a.png", "d.png"]


def test_engine_keeps_its_disk_cache_under_the_cap(engine, make_package, tmp_path):
    package = _load(make_package(frames=1, characters=characters("", "")))
    _run(engine, package, tmp_path / "job")
    (plate,) = engine.cache_dir.glob("*.png")
    old = plate.stat().st_mtime_ns - 10**12
    os.utime(plate, ns=(old, old))
    engine.forget_plates()
    _run(engine, package, tmp_path / "hit")
    assert [source for _, _, source in engine.plate_log] == ["disk"]
    assert plate.stat().st_mtime_ns > old  # the hit marked it recently used

    try:
        engine.plate_cache_bytes = 0  # nothing fits: plates live in memory only
        package.meta["camera_matrices"]["1"] = [[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]
        _run(engine, package, tmp_path / "moved")
        assert [source for _, _, source in engine.plate_log] == ["generated"]
        assert list(engine.cache_dir.glob("*.png")) == []
    finally:
        engine.plate_cache_bytes = 2 * 1024**3


def test_cli_sets_the_plate_cache_size(models_toml, tmp_path, capsys):
    from standin.ai_backend import cli

    engine, registry = cli.load_engine("diffusers", models_toml, tmp_path / "data", plate_cache_mb=64)
    assert engine.cache_dir == tmp_path / "data" / "plate-cache" and engine.plate_cache_bytes == 64 * 1024**2
    assert cli.load_engine("diffusers", models_toml, tmp_path / "data")[0].plate_cache_bytes == 2 * 1024**3
    assert cli.build_parser().parse_args(["serve", "--plate-cache-mb", "512"]).plate_cache_mb == 512
    assert cli.main(["serve", "--plate-cache-mb", "-1", "--data", str(tmp_path / "data")]) == 2
    assert "--plate-cache-mb must not be negative" in capsys.readouterr().err
