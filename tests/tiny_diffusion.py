# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny random-weight SD 1.5-style models for tests, built and saved locally (no downloads).

``build_model_folder(root)`` writes what a user would have on disk — a diffusers SD 1.5 folder,
three ControlNets (depth, OpenPose, canny), two character LoRAs as ``.safetensors``, an IP-Adapter
with its CLIP image encoder (a single file, as in ComfyUI's clip_vision/), a few-step "preview" LoRA
and a tiny autoencoder (TAESD layout) — and a ``models.toml`` that points at them with relative
paths, so the engine loads them exactly as it loads real weights. Everything is small enough to run
2 denoising steps at 64×48 in a fraction of a second on CPU. ``save_single_file_sd15`` writes a base as
one checkpoint in the original LDM layout. Import as ``import tiny_diffusion`` (``tests/`` is on
pytest's pythonpath).
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
image_encoder_dirs = ["clip_vision"]
"""


def build_model_folder(root: pathlib.Path) -> pathlib.Path:
    """Build every tiny model under ``root`` and return the path of its ``models.toml``.

    LoRAs: ``loras/mara.safetensors`` and ``loras/theo.safetensors`` (random, distinct) and
    ``loras/fast.safetensors`` (stands in for a few-step LCM LoRA); ``ipadapter/ip-adapter_tiny_sd15.safetensors``
    with ``clip_vision/tiny-clip-vision.safetensors``; ``taesd/`` (an AutoencoderTiny folder).
    """
    root = pathlib.Path(root)
    torch.manual_seed(0)
    with torch.no_grad():
        pipe = build_base(root / "bases" / "tiny-sd15")
        for seed, control in enumerate(("depth", "openpose", "canny"), start=10):
            build_controlnet(root / "controlnet" / f"tiny-{control}", seed)
        build_ip_adapter(pipe.unet, root / "ipadapter" / "ip-adapter_tiny_sd15.safetensors", seed=30)
        build_image_encoder(root / "clip_vision" / "tiny-clip-vision.safetensors", seed=31)
        build_tiny_autoencoder(root / "taesd", seed=32)
    build_lora(pipe, root / "loras" / "mara.safetensors", seed=1)
    build_lora(pipe, root / "loras" / "theo.safetensors", seed=2)
    build_lora(pipe, root / "loras" / "fast.safetensors", seed=4)
    toml = root / "models.toml"
    toml.write_text(MODELS_TOML)
    return toml


IMAGE_EMBED_DIM = 32  # the tiny CLIP vision encoder's projection, which the IP-Adapter reads


def build_image_encoder(path: pathlib.Path, seed: int):
    """A tiny CLIPVisionModelWithProjection saved as ONE .safetensors file, like ComfyUI's clip_vision/ files
    (no config.json: the backend reads its sizes off the tensor shapes; one head per 64 channels → 1)."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=IMAGE_EMBED_DIM, num_hidden_layers=2, num_attention_heads=1,
        intermediate_size=37, image_size=32, patch_size=8, hidden_act="gelu"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    return encoder


def build_ip_adapter(unet, path: pathlib.Path, seed: int) -> pathlib.Path:
    """A random IP-Adapter for ``unet`` in the .safetensors layout ``load_ip_adapter`` reads: ``image_proj.*``
    (an ImageProjection of the image embedding into 4 tokens) and ``ip_adapter.<n>.to_k_ip/to_v_ip.weight``
    for the n-th cross-attention layer (n = 1, 3, 5…, in ``unet.attn_processors`` order)."""
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    cross = unet.config.cross_attention_dim
    tensors, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention: no image tokens
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        for kind in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{kind}.weight"] = torch.randn(hidden, cross)
        key_id += 2
    projection = ImageProjection(cross_attention_dim=cross, image_embed_dim=IMAGE_EMBED_DIM, num_image_text_embeds=4)
    state = projection.state_dict()
    tensors.update({"image_proj.proj.weight": state["image_embeds.weight"] * 4,
                    "image_proj.proj.bias": state["image_embeds.bias"],
                    "image_proj.norm.weight": state["norm.weight"], "image_proj.norm.bias": state["norm.bias"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def build_tiny_autoencoder(folder: pathlib.Path, seed: int):
    """A tiny AutoencoderTiny (TAESD's architecture) with the tiny base's 4 latent channels and ×2 scale."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                          num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    vae.save_pretrained(str(folder))
    return vae


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


# -- single-file checkpoints (the original LDM/CompVis layout) ----------------------------------------


def _ldm_unet_keys(unet) -> dict[str, str]:
    """diffusers UNet key prefix → LDM prefix, inverting diffusers' ``convert_ldm_unet_checkpoint``."""
    layers = unet.config.layers_per_block
    mapping = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
               "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
               "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
               "mid_block.resnets.1.": "middle_block.2."}
    for block, kind in enumerate(unet.config.down_block_types):
        for j in range(layers):
            mapping[f"down_blocks.{block}.resnets.{j}."] = f"input_blocks.{block * (layers + 1) + j + 1}.0."
            mapping[f"down_blocks.{block}.attentions.{j}."] = f"input_blocks.{block * (layers + 1) + j + 1}.1."
        mapping[f"down_blocks.{block}.downsamplers.0.conv."] = f"input_blocks.{(block + 1) * (layers + 1)}.0.op."
    for block, kind in enumerate(unet.config.up_block_types):
        for j in range(layers + 1):
            mapping[f"up_blocks.{block}.resnets.{j}."] = f"output_blocks.{block * (layers + 1) + j}.0."
            mapping[f"up_blocks.{block}.attentions.{j}."] = f"output_blocks.{block * (layers + 1) + j}.1."
        slot = 2 if "CrossAttn" in kind else 1  # the upsampler follows the attention, if there is one
        mapping[f"up_blocks.{block}.upsamplers.0."] = f"output_blocks.{block * (layers + 1) + layers}.{slot}."
    return mapping


_LDM_RESNET = (("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("norm2.", "out_layers.0."),
               ("conv2.", "out_layers.3."), ("time_emb_proj.", "emb_layers.1."), ("conv_shortcut.", "skip_connection."))
_LDM_VAE_ATTENTION = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                      ("to_out.0.", "proj_out."))


def _rename(key: str, prefixes: dict[str, str]) -> str:
    prefix = max((p for p in prefixes if key.startswith(p)), key=len)
    return prefixes[prefix] + key[len(prefix):]


def _ldm_unet(unet) -> dict:
    prefixes = _ldm_unet_keys(unet)
    state = {}
    for key, tensor in unet.state_dict().items():
        ldm = _rename(key, prefixes)
        if ".resnets." in key:
            head, tail = ldm.rsplit(".", 2)[0], ".".join(ldm.rsplit(".", 2)[1:])
            for new, old in _LDM_RESNET:
                tail = tail.replace(new, old) if tail.startswith(new) else tail
            ldm = f"{head}.{tail}"
        state["model.diffusion_model." + ldm] = tensor
    return state


def _ldm_vae(vae) -> dict:
    blocks = len(vae.config.down_block_types)
    prefixes = {"encoder.conv_norm_out.": "encoder.norm_out.", "decoder.conv_norm_out.": "decoder.norm_out.",
                "encoder.": "encoder.", "decoder.": "decoder.", "quant_conv.": "quant_conv.",
                "post_quant_conv.": "post_quant_conv."}
    for side in ("encoder", "decoder"):
        prefixes[f"{side}.mid_block.resnets.0."] = f"{side}.mid.block_1."
        prefixes[f"{side}.mid_block.resnets.1."] = f"{side}.mid.block_2."
        prefixes[f"{side}.mid_block.attentions.0."] = f"{side}.mid.attn_1."
    for i in range(blocks):
        prefixes[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        prefixes[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{blocks - 1 - i}.block."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{blocks - 1 - i}.upsample."
    state = {}
    for key, tensor in vae.state_dict().items():
        ldm = _rename(key, prefixes).replace("conv_shortcut.", "nin_shortcut.")
        if ".mid.attn_1." in ldm:
            head, tail = ldm.split(".mid.attn_1.")
            for new, old in _LDM_VAE_ATTENTION:
                tail = old + tail[len(new):] if tail.startswith(new) else tail
            ldm = f"{head}.mid.attn_1.{tail}"
            if tensor.ndim == 2:  # LDM's attention projections are 1×1 convolutions
                tensor = tensor[:, :, None, None]
        state["first_stage_model." + ldm] = tensor
    return state


def save_single_file_sd15(pipe, path: pathlib.Path) -> pathlib.Path:
    """Save an SD 1.5 pipeline as ONE .safetensors checkpoint in the original LDM layout
    (``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*``), the way
    civitai/ComfyUI checkpoints are shipped and ``StableDiffusionPipeline.from_single_file`` reads them."""
    from safetensors.torch import save_file

    state = {**_ldm_unet(pipe.unet), **_ldm_vae(pipe.vae)}
    for key, tensor in pipe.text_encoder.state_dict().items():  # transformers 5 drops the "text_model." level
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        state[f"cond_stage_model.transformer.{key}"] = tensor
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def copy_configs(diffusers_folder: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """The configs of a diffusers folder without its weights: what ``config =`` in models.toml points at."""
    import shutil

    for source in pathlib.Path(diffusers_folder).rglob("*"):
        if source.is_file() and source.suffix in (".json", ".txt"):
            destination = target / source.relative_to(diffusers_folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)
    return target
