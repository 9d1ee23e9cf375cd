# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny random-weight SD 1.5-style models for tests, built and saved locally (no downloads).

``build_model_folder(root)`` writes what a user would have on disk — a diffusers SD 1.5 folder,
three ControlNets (depth, OpenPose, canny), two character LoRAs as ``.safetensors`` — and a
``models.toml`` that points at them with relative paths, so the engine loads them exactly as it
loads real weights. Everything is small enough to run 2 denoising steps at 64×48 in a fraction of
a second on CPU. Import as ``import tiny_diffusion`` (``tests/`` is on pytest's pythonpath).
"""

from __future__ import annotations

import copy
import os
import pathlib
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from standin.tools import offline_clip  # noqa: E402

CROSS_DIM = 32


def build_base(folder: pathlib.Path, seed: int = 0):
    """Save a tiny SD 1.5 diffusers folder (unet, vae, text encoder, tokenizer, DDIM scheduler)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = pathlib.Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=CROSS_DIM, norm_num_groups=1,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )  # two blocks: vae_scale_factor 2
    with tempfile.TemporaryDirectory() as source:
        tokenizer = offline_clip.write_clip_tokenizer(pathlib.Path(source))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer), hidden_size=CROSS_DIM,
        intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return pipe


def build_controlnet(folder: pathlib.Path, seed: int):
    """Save a tiny ControlNet whose output convolutions are randomised (a fresh one is a no-op)."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel(
        block_out_channels=(4, 8), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=CROSS_DIM,
        conditioning_embedding_out_channels=(8, 16), norm_num_groups=1,
    )
    for module in list(controlnet.controlnet_down_blocks.modules()) + [controlnet.controlnet_mid_block]:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.3)
            module.bias.data.fill_(0.2)
    controlnet.save_pretrained(str(folder))
    return controlnet


def build_lora(pipe, path: pathlib.Path, seed: int) -> pathlib.Path:
    """Write a random (train-free) LoRA for ``pipe``'s UNet and text encoder as one .safetensors file."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    path = pathlib.Path(path)
    torch.manual_seed(seed)
    unet, text_encoder = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="tmp")
    text_encoder.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                        target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]),
                             adapter_name="tmp")
    for model in (unet, text_encoder):  # make the effect large enough to see in 2 steps
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.mul_(3.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(path.parent), weight_name=path.name, safe_serialization=True,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="tmp")),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoder, adapter_name="tmp")),
    )
    return path


MODELS_TOML = """\
# written by tests/tiny_diffusion.py
[[base]]
name = "tiny-sd15"
path = "bases/tiny-sd15"
family = "sd15"

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

[ip_adapters]
dirs = ["ipadapter"]
"""


def build_model_folder(root: pathlib.Path) -> pathlib.Path:
    """Build every tiny model under ``root`` and return the path of its ``models.toml``.

    LoRAs: ``loras/mara.safetensors`` and ``loras/theo.safetensors`` (random, distinct).
    """
    root = pathlib.Path(root)
    torch.manual_seed(0)
    with torch.no_grad():
        pipe = build_base(root / "bases" / "tiny-sd15")
        for seed, control in enumerate(("depth", "openpose", "canny"), start=10):
            build_controlnet(root / "controlnet" / f"tiny-{control}", seed)
    build_lora(pipe, root / "loras" / "mara.safetensors", seed=1)
    build_lora(pipe, root / "loras" / "theo.safetensors", seed=2)
    (root / "ipadapter").mkdir(exist_ok=True)
    toml = root / "models.toml"
    toml.write_text(MODELS_TOML)
    return toml


# -- SDXL + ControlNet-Union -------------------------------------------------------------------------

SDXL_UNET = dict(attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                 projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled text
                 cross_attention_dim=64)  # two text encoders of 32


def build_sdxl_base(folder: pathlib.Path, seed: int = 0):
    """Save a tiny SDXL diffusers folder (two text encoders, Euler scheduler)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **SDXL_UNET)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    with tempfile.TemporaryDirectory() as source:
        tokenizer = offline_clip.write_clip_tokenizer(pathlib.Path(source))
    config = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer), hidden_size=32,
                            intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, hidden_act="gelu",
                            projection_dim=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(unet=unet, vae=vae, text_encoder=CLIPTextModel(config), tokenizer=tokenizer,
                                     text_encoder_2=CLIPTextModelWithProjection(config), tokenizer_2=tokenizer,
                                     scheduler=scheduler, feature_extractor=None, image_encoder=None,
                                     add_watermarker=False)
    pipe.save_pretrained(str(folder))
    return pipe


def build_union_controlnet(folder: pathlib.Path, seed: int):
    from diffusers import ControlNetUnionModel

    torch.manual_seed(seed)
    controlnet = ControlNetUnionModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), conditioning_embedding_out_channels=(16, 32),
        num_control_type=8, num_trans_channel=32, num_trans_head=2, num_trans_layer=1, num_proj_channel=32,
        **SDXL_UNET)
    for module in list(controlnet.controlnet_down_blocks.modules()) + [controlnet.controlnet_mid_block]:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.3)
            module.bias.data.fill_(0.2)
    controlnet.save_pretrained(str(folder))
    return controlnet


def build_sdxl_controlnet(folder: pathlib.Path, seed: int):
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                 conditioning_embedding_out_channels=(16, 32), **SDXL_UNET)
    for module in list(controlnet.controlnet_down_blocks.modules()) + [controlnet.controlnet_mid_block]:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.3)
            module.bias.data.fill_(0.2)
    controlnet.save_pretrained(str(folder))
    return controlnet


def build_sdxl_lora(pipe, path: pathlib.Path, seed: int) -> pathlib.Path:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    layers = {}
    for key, model, targets in (("unet_lora_layers", pipe.unet, ["to_q", "to_k", "to_v", "to_out.0"]),
                                ("text_encoder_lora_layers", pipe.text_encoder, ["q_proj", "v_proj"]),
                                ("text_encoder_2_lora_layers", pipe.text_encoder_2, ["q_proj", "v_proj"])):
        model = copy.deepcopy(model)
        model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=targets),
                          adapter_name="tmp")
        layers[key] = convert_state_dict_to_diffusers(get_peft_model_state_dict(model, adapter_name="tmp"))
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(str(path.parent), weight_name=path.name, safe_serialization=True,
                                                **layers)
    return path


SDXL_TOML = """\
# written by tests/tiny_diffusion.py
[[base]]
name = "tiny-sdxl"
path = "bases/tiny-sdxl"
family = "sdxl"

[[controlnet]]
name = "tiny-union"
path = "controlnet/tiny-union"
control = "union"

[[controlnet]]
name = "tiny-xl-depth"
path = "controlnet/tiny-xl-depth"
control = "depth"
family = "sdxl"

[loras]
dirs = ["loras"]
"""


def build_sdxl_model_folder(root: pathlib.Path) -> pathlib.Path:
    """A tiny SDXL base, a ControlNet-Union, an SDXL depth ControlNet and ``loras/mara_xl.safetensors``;
    returns its models.toml."""
    root = pathlib.Path(root)
    with torch.no_grad():
        pipe = build_sdxl_base(root / "bases" / "tiny-sdxl")
        build_union_controlnet(root / "controlnet" / "tiny-union", seed=20)
        build_sdxl_controlnet(root / "controlnet" / "tiny-xl-depth", seed=21)
    build_sdxl_lora(pipe, root / "loras" / "mara_xl.safetensors", seed=3)
    toml = root / "models.toml"
    toml.write_text(SDXL_TOML)
    return toml
