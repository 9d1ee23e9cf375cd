# SPDX-License-Identifier: GPL-3.0-or-later
"""The model registry: models.toml, ComfyUI folders, and names that must not escape their folders."""

import json
import math
import os
import pathlib
import struct

import pytest

from standin.ai_backend.engine import EngineInputError
from standin.ai_backend.models import guess_control, image_encoder_config, load_registry


def _weights(path: pathlib.Path, family="sd15") -> pathlib.Path:
    """A small .safetensors file whose tensor names look like an SD 1.5 or SDXL checkpoint (no torch)."""
    keys = ["model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight"]
    keys.append("conditioner.embedders.1.model.ln_final.weight" if family == "sdxl"
                else "cond_stage_model.transformer.text_model.final_layer_norm.weight")
    header = {key: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, key in enumerate(keys)}
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(4 * len(keys)))
    return path


def _tensors(path: pathlib.Path, shapes: dict) -> pathlib.Path:
    """A .safetensors file holding zero tensors of the given shapes (only the header matters here)."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))
    return path


def _ip_adapter(path, text_width=768, image_width=1024, plus=False):
    """An IP-Adapter's header: plain (projects the image embedding) or Plus (reads hidden states)."""
    proj = {"image_proj.proj_in.weight": [64, image_width]} if plus else {"image_proj.proj.weight": [16, image_width]}
    return _tensors(path, {**proj, "ip_adapter.1.to_k_ip.weight": [8, text_width],
                           "ip_adapter.1.to_v_ip.weight": [8, text_width]})


def _clip_vision(path, hidden=1280, projection=1024, layers=2, patch=14, image=224):
    shapes = {"vision_model.embeddings.patch_embedding.weight": [hidden, 3, patch, patch],
              "vision_model.embeddings.position_embedding.weight": [(image // patch) ** 2 + 1, hidden],
              "visual_projection.weight": [projection, hidden]}
    for layer in range(layers):
        shapes[f"vision_model.encoder.layers.{layer}.mlp.fc1.weight"] = [4 * hidden, hidden]
    return _tensors(path, shapes)


def _diffusers_folder(path: pathlib.Path, index: str = "model_index.json") -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / index).write_text("{}")
    return path


@pytest.fixture
def model_root(tmp_path):
    """A models folder with a diffusers base, a single-file base, three ControlNets, LoRAs, IP-Adapters."""
    root = tmp_path / "models"
    _diffusers_folder(root / "sd15")
    _weights(root / "checkpoints" / "dreamy.safetensors")
    for control in ("depth", "openpose", "canny"):
        _diffusers_folder(root / "controlnet" / control, "config.json")
    _weights(root / "loras" / "mara.safetensors")
    _weights(root / "loras" / "people" / "theo.safetensors")
    (root / "loras" / "old.ckpt").write_bytes(b"pickle")
    (root / "loras" / "notes.txt").write_text("not a model")
    _weights(root / "ipadapter" / "ip-adapter_sd15.safetensors")
    (root / "models.toml").write_text("""
[[base]]
name = "sd15"
path = "sd15"

[[base]]
name = "dreamy"
path = "checkpoints/dreamy.safetensors"
family = "sd15"

[[controlnet]]
name = "depth"
path = "controlnet/depth"
control = "depth"

[[controlnet]]
name = "pose"
path = "controlnet/openpose"
control = "openpose"

[[controlnet]]
name = "canny"
path = "controlnet/canny"
control = "canny"

[loras]
dirs = ["loras"]

[ip_adapters]
dirs = ["ipadapter"]
""")
    return root


def test_registry_lists_diffusers_folder_single_file_and_folders(model_root):
    registry = load_registry(model_root / "models.toml")
    listing = registry.listing()
    assert listing["bases"] == [
        {"name": "sd15", "family": "sd15", "format": "diffusers"},
        {"name": "dreamy", "family": "sd15", "format": "single-file"},
    ]
    assert [(c["name"], c["control"], c["family"]) for c in listing["controlnets"]] == [
        ("depth", "depth", "sd15"), ("pose", "openpose", "sd15"), ("canny", "canny", "sd15")]
    assert [item["name"] for item in listing["loras"]] == ["mara.safetensors", "people/theo.safetensors"]
    assert [item["name"] for item in listing["ip_adapters"]] == ["ip-adapter_sd15.safetensors"]
    assert str(model_root) not in json.dumps(listing)  # names, never paths on the server
    assert str(model_root.resolve()) not in json.dumps(listing)

    assert registry.resolve_base().name == "sd15"  # the first is the default
    assert registry.resolve_base("dreamy").single_file
    assert registry.resolve_lora("mara.safetensors") == (model_root / "loras" / "mara.safetensors").resolve()
    assert registry.resolve_lora("people/theo.safetensors").name == "theo.safetensors"
    assert registry.resolve_ip_adapter("ip-adapter_sd15.safetensors").path.is_file()
    assert [c.name for c in registry.controlnets_for("openpose", "sd15")] == ["pose"]

    # a LoRA dropped in later is found without reloading the registry
    _weights(model_root / "loras" / "new.safetensors")
    assert registry.resolve_lora("new.safetensors").is_file()


def test_comfyui_root_is_scanned(tmp_path):
    comfy = tmp_path / "ComfyUI" / "models"
    _weights(comfy / "checkpoints" / "dreamshaper_8.safetensors")
    _weights(comfy / "checkpoints" / "SDXL" / "juggernaut.safetensors", "sdxl")
    (comfy / "checkpoints" / "v1-5-pruned.ckpt").write_bytes(b"pickle")
    _weights(comfy / "controlnet" / "control_v11f1p_sd15_depth.safetensors")
    _weights(comfy / "controlnet" / "control_v11p_sd15_openpose.safetensors")
    _weights(comfy / "controlnet" / "control_v11p_sd15_canny.safetensors")
    _weights(comfy / "controlnet" / "controlnet-union-sdxl-promax.safetensors")
    _weights(comfy / "loras" / "mara.safetensors")
    _weights(comfy / "ipadapter" / "ip-adapter-plus_sd15.safetensors")
    toml = tmp_path / "models.toml"
    toml.write_text('comfyui_root = "ComfyUI/models"\n')

    registry = load_registry(toml)
    listing = registry.listing()
    assert {(b["name"], b["family"]) for b in listing["bases"]} == {
        ("dreamshaper_8.safetensors", "sd15"), ("SDXL/juggernaut.safetensors", "sdxl")}
    controls = {c["name"]: c["control"] for c in listing["controlnets"]}
    assert controls == {"control_v11f1p_sd15_depth.safetensors": "depth",
                        "control_v11p_sd15_openpose.safetensors": "openpose",
                        "control_v11p_sd15_canny.safetensors": "canny",
                        "controlnet-union-sdxl-promax.safetensors": "union"}
    assert [c.name for c in registry.controlnets_for("depth", "sd15")] == ["control_v11f1p_sd15_depth.safetensors"]
    assert [item["name"] for item in listing["loras"]] == ["mara.safetensors"]
    assert [item["name"] for item in listing["ip_adapters"]] == ["ip-adapter-plus_sd15.safetensors"]
    assert registry.resolve_base("dreamshaper_8.safetensors").single_file
    assert registry.resolve_controlnet("control_v11p_sd15_canny.safetensors").control == "canny"
    with pytest.raises(EngineInputError, match="convert it to safetensors"):
        registry.resolve_base("v1-5-pruned.ckpt")
    assert guess_control("t2i-adapter_pose.safetensors") == "openpose"
    assert guess_control("tile.safetensors") == "other"


@pytest.mark.parametrize("name, message", [
    ("../secret.safetensors", r"\.\."),
    ("people/../../secret.safetensors", r"\.\."),
    ("/etc/passwd.safetensors", "not a path"),
    ("~/x.safetensors", "not a path"),
    ("C:/loras/x.safetensors", "not a path"),
    ("people\\theo.safetensors", "not a path"),
    ("old.ckpt", "pickle.*convert it to safetensors"),
    ("model.bin", "pickle.*convert it to safetensors"),
    ("model.pt", "pickle.*convert it to safetensors"),
    ("notes.txt", "only loads .safetensors"),
    ("", "empty"),
])
def test_names_that_leave_their_folder_or_are_pickles_are_refused(model_root, name, message):
    registry = load_registry(model_root / "models.toml")
    with pytest.raises(EngineInputError, match=message):
        registry.resolve_lora(name)


def test_symlinks_out_of_the_folder_are_refused(model_root, tmp_path):
    outside = _weights(tmp_path / "elsewhere" / "stolen.safetensors")
    (model_root / "loras" / "link.safetensors").symlink_to(outside)
    (model_root / "loras" / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    (model_root / "loras" / "inside.safetensors").symlink_to(model_root / "loras" / "mara.safetensors")
    (model_root / "loras" / "sneaky.safetensors").symlink_to(model_root / "loras" / "old.ckpt")
    registry = load_registry(model_root / "models.toml")
    with pytest.raises(EngineInputError, match="outside its folder"):
        registry.resolve_lora("link.safetensors")
    with pytest.raises(EngineInputError, match="outside its folder"):
        registry.resolve_lora("linkdir/stolen.safetensors")
    with pytest.raises(EngineInputError, match="pickle"):
        registry.resolve_lora("sneaky.safetensors")
    assert registry.resolve_lora("inside.safetensors").name == "mara.safetensors"  # links inside are fine
    names = [item["name"] for item in registry.listing()["loras"]]
    assert "link.safetensors" not in names and not any(n.startswith("linkdir") for n in names)


def test_unknown_names_list_what_is_available(model_root):
    registry = load_registry(model_root / "models.toml")
    with pytest.raises(EngineInputError, match=r"'nobody.safetensors' is not on the server; available: "
                                               r"mara.safetensors, people/theo.safetensors"):
        registry.resolve_lora("nobody.safetensors")
    with pytest.raises(EngineInputError, match="available: sd15, dreamy"):
        registry.resolve_base("sdxl-turbo")
    with pytest.raises(EngineInputError, match="available: depth, pose, canny"):
        registry.resolve_controlnet("tile")


@pytest.mark.parametrize("text, message", [
    ("[[base]\nname = 1", "not valid TOML"),
    ('[[base]]\nname = "x"\npath = "nowhere"\n', "does not exist"),
    ('[[base]]\nname = "x"\npath = "old.ckpt"\n', "pickle.*safetensors"),
    ('[[base]]\nname = "x"\npath = "empty"\n', "model_index.json"),
    ('[[base]]\nname = "x"\npath = "base.safetensors"\nfamily = "sd3"\n', "family"),
    ('[[controlnet]]\nname = "x"\npath = "base.safetensors"\ncontrol = "tile"\n', "control must be"),
    ('[loras]\ndirs = ["missing"]\n', "does not exist"),
    ('comfyui_root = "empty"\n', "none of"),
    ('[[bases]]\nname = "x"\n', "unknown key"),
    ('[[base]]\nname = "x"\npath = "base.safetensors"\nvae = "y"\n', "unknown key"),
    ('[single_file_configs]\nsd3 = "empty"\n', "maps sd15 and sdxl to diffusers folders"),
    ('[single_file_configs]\nsd15 = "empty"\n', "no model_index.json"),
    ('[[base]]\nname = "x"\npath = "base.safetensors"\n[[base]]\nname = "x"\npath = "base.safetensors"\n',
     "two \\[\\[base\\]\\] entries"),
])
def test_broken_toml_is_a_clear_error_at_load(tmp_path, text, message):
    (tmp_path / "old.ckpt").write_bytes(b"pickle")
    (tmp_path / "empty").mkdir()
    _weights(tmp_path / "base.safetensors")
    toml = tmp_path / "models.toml"
    toml.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_registry(toml)


def test_missing_toml_and_absolute_paths(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_registry(tmp_path / "nope.toml")
    base = _weights(tmp_path / "abs" / "base.safetensors")
    toml = tmp_path / "conf" / "models.toml"
    toml.parent.mkdir()
    toml.write_text(f'[[base]]\nname = "abs"\npath = "{base.as_posix()}"\n')
    assert load_registry(toml).resolve_base("abs").path == base
    assert os.fspath(base) not in json.dumps(load_registry(toml).listing())


def test_the_example_registry_is_valid(tmp_path):
    example = pathlib.Path(__file__).resolve().parents[2] / "models.example.toml"
    models = tmp_path / "models"
    _diffusers_folder(models / "stable-diffusion-v1-5")
    for name in ("control_v11f1p_sd15_depth", "control_v11p_sd15_openpose", "control_v11p_sd15_canny"):
        _diffusers_folder(models / "controlnet" / name, "config.json")
    (models / "loras").mkdir()
    (models / "ipadapter").mkdir()
    (models / "clip_vision").mkdir()
    toml = tmp_path / "models.toml"
    toml.write_text(example.read_text().replace("~/models", models.as_posix()))
    listing = load_registry(toml).listing()
    assert [b["name"] for b in listing["bases"]] == ["sd15"]
    assert [(c["name"], c["control"]) for c in listing["controlnets"]] == [
        ("depth", "depth"), ("openpose", "openpose"), ("canny", "canny")]


def test_ip_adapters_from_comfyui_get_the_image_encoder_whose_size_fits(tmp_path):
    comfy = tmp_path / "ComfyUI" / "models"
    _weights(comfy / "checkpoints" / "dreamshaper_8.safetensors")
    _ip_adapter(comfy / "ipadapter" / "ip-adapter_sd15.safetensors", 768, image_width=1024)
    _ip_adapter(comfy / "ipadapter" / "ip-adapter-plus_sdxl_vit-h.safetensors", 2048, image_width=1280, plus=True)
    _ip_adapter(comfy / "ipadapter" / "ip-adapter_sdxl.safetensors", 2048, image_width=1280)
    _clip_vision(comfy / "clip_vision" / "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors", 1664, 1280, layers=3)
    _clip_vision(comfy / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", 1280, 1024)
    (tmp_path / "models.toml").write_text('comfyui_root = "ComfyUI/models"\n')
    registry = load_registry(tmp_path / "models.toml")

    assert registry.listing()["ip_adapters"] == [
        {"name": "ip-adapter-plus_sdxl_vit-h.safetensors", "family": "sdxl"},
        {"name": "ip-adapter_sd15.safetensors", "family": "sd15"},
        {"name": "ip-adapter_sdxl.safetensors", "family": "sdxl"}]
    assert [a.name for a in registry.ip_adapters_for("sd15")] == ["ip-adapter_sd15.safetensors"]
    encoder = {a.name: registry.image_encoder_for(a).name for a in registry.ip_adapters}
    assert encoder == {"ip-adapter_sd15.safetensors": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",  # 1024 out
                       "ip-adapter-plus_sdxl_vit-h.safetensors": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
                       "ip-adapter_sdxl.safetensors": "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"}
    config = image_encoder_config(comfy / "clip_vision" / "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors")
    assert config == {"hidden_size": 1664, "projection_dim": 1280, "num_hidden_layers": 3,
                      "intermediate_size": 4 * 1664, "num_attention_heads": 16, "patch_size": 14,
                      "image_size": 224, "hidden_act": "gelu"}
    with pytest.raises(EngineInputError, match="not a CLIP vision encoder"):
        image_encoder_config(comfy / "ipadapter" / "ip-adapter_sd15.safetensors")

    # without a fitting encoder the message says where to put one
    (comfy / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors").unlink()
    with pytest.raises(EngineInputError, match=r"needs a CLIP image encoder and none of "
                                               r"CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors fits it.*clip_vision"):
        registry.image_encoder_for(registry.resolve_ip_adapter("ip-adapter_sd15.safetensors"))


def test_named_ip_adapters_and_image_encoder_dirs(tmp_path):
    _ip_adapter(tmp_path / "ipadapter" / "scanned_sd15.safetensors")
    _ip_adapter(tmp_path / "faces" / "face.safetensors", 768, image_width=1280, plus=True)
    encoder = tmp_path / "image_encoder"
    _clip_vision(encoder / "model.safetensors", 1280, 1024)
    (encoder / "config.json").write_text("{}")
    _clip_vision(tmp_path / "clip_vision" / "vit-h.safetensors", 1280, 1024)
    toml = tmp_path / "models.toml"
    toml.write_text("""
[ip_adapters]
dirs = ["ipadapter"]
image_encoder_dirs = ["clip_vision"]

[ip_adapters.face]
file = "faces/face.safetensors"
image_encoder = "image_encoder"
""")
    registry = load_registry(toml)
    assert [a.public() for a in registry.ip_adapters] == [{"name": "face", "family": "sd15"},
                                                          {"name": "scanned_sd15.safetensors", "family": "sd15"}]
    assert registry.image_encoder_for(registry.resolve_ip_adapter("face")) == encoder
    scanned = registry.resolve_ip_adapter("scanned_sd15.safetensors")
    assert registry.image_encoder_for(scanned).name == "vit-h.safetensors"
    with pytest.raises(EngineInputError, match="IP-Adapter 'nobody' is not on the server; available: face, scanned"):
        registry.resolve_ip_adapter("nobody")
    with pytest.raises(EngineInputError, match="pickle"):
        registry.resolve_ip_adapter("old.bin")


@pytest.mark.parametrize("table, message", [
    ('[ip_adapters.face]\nfile = "face.bin"\n', "pickle"),
    ('[ip_adapters.face]\nfile = "faces"\n', "must be one .safetensors file"),
    ('[ip_adapters.face]\nfile = "face.safetensors"\nimage_encoder = "faces"\n', "no config.json"),
    ('[ip_adapters.face]\nfile = "face.safetensors"\nscale = 1\n', "unknown key.*scale"),
    ('[ip_adapters]\nimage_encoders = 1\n', "unknown key 'image_encoders'"),
    ('[ip_adapters]\nimage_encoder_dirs = ["nowhere"]\n', "does not exist"),
])
def test_broken_ip_adapter_tables_are_clear_errors_at_load(tmp_path, table, message):
    _ip_adapter(tmp_path / "face.safetensors")
    (tmp_path / "face.bin").write_bytes(b"pickle")
    (tmp_path / "faces").mkdir()
    (tmp_path / "models.toml").write_text(table)
    with pytest.raises(ValueError, match=message):
        load_registry(tmp_path / "models.toml")


def test_preview_extras_of_a_base(tmp_path):
    _diffusers_folder(tmp_path / "sd15")
    _weights(tmp_path / "loras" / "lcm-lora-sdv1-5.safetensors")
    _diffusers_folder(tmp_path / "taesd", "config.json")
    base = '[[base]]\nname = "sd15"\npath = "sd15"\n'
    toml = tmp_path / "models.toml"
    toml.write_text(base + 'preview_lora = "lcm-lora-sdv1-5.safetensors"\npreview_lora_weight = 0.9\n'
                    'preview_scheduler = "lcm"\npreview_steps = 4\npreview_guidance = 1.5\npreview_vae = "taesd"\n'
                    '[loras]\ndirs = ["loras"]\n')
    preview = load_registry(toml).resolve_base().preview
    assert (preview.lora, preview.lora_weight, preview.scheduler, preview.steps, preview.guidance) == (
        "lcm-lora-sdv1-5.safetensors", 0.9, "lcm", 4, 1.5)
    assert preview.vae == (tmp_path / "taesd").resolve()
    toml.write_text(base)
    assert load_registry(toml).resolve_base().preview.lora is None

    (tmp_path / "empty").mkdir()
    for extra, message in (('preview_scheduler = "turbo"\n', "preview_scheduler must be one of"),
                           ('preview_steps = 0\n', "preview_steps"),
                           ('preview_vae = "empty"\n', "AutoencoderTiny"),
                           ('preview_lora = "hyper.safetensors"\n[loras]\ndirs = ["loras"]\n',
                            "preview_lora: LoRA 'hyper.safetensors' is not on the server")):
        toml.write_text(base + extra)
        with pytest.raises(ValueError, match=message):
            load_registry(toml)
