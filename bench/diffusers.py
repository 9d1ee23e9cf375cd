# SPDX-License-Identifier: GPL-3.0-or-later
"""SD 1.5 + ControlNet ×2 denoising speed: the diffusers pipeline as documented against our optimised path, and FLOP/s.

Full-size SD 1.5 architecture (UNet 320/640/1280/1280, two ControlNets made from it, the SD VAE) with
random weights, built offline from configs. The baseline is ``StableDiffusionControlNetPipeline`` with a
``MultiControlNetModel`` as diffusers' docs recommend (on a GPU: half precision, default attention, i.e.
SDPA). Ours, in the same run and on the same weights: channels_last UNet/ControlNets/VAE, fused QKV
projections, and on CUDA ``torch.compile``. Both are timed per denoising step after a warm-up, their images
(same seed) must agree within 1e-2, and the UNet + ControlNet FLOPs of one step (counted with
``FlopCounterMode`` at the benchmark size, CFG batch of 2) over the measured step time give the FLOP/s
achieved, as a share of the GPU's dense fp16 peak where the device is known.

On a GPU: 512×512, 20 steps, fp16. On CPU (fp32): 256×256, 4 steps, no compile, so it finishes in a few
minutes on 2 cores. Overrides: ``STANDIN_BENCH_SIZE``, ``STANDIN_BENCH_STEPS``, ``STANDIN_BENCH_COMPILE=0/1``,
``STANDIN_BENCH_COMPILE_MODE`` (default ``max-autotune-no-cudagraphs``).
"""

import math
import os
import statistics
import tempfile
import time

from standin.tools import offline_clip

os.environ["HF_HUB_OFFLINE"] = "1"

TOLERANCE = 1e-2
PROMPT = "a knight and a dancer in a castle courtyard, cinematic lighting"
NEGATIVE = "blurry, low quality"

# Dense (no sparsity) fp16/bf16 tensor-core peaks, FLOP/s, matched on a lower-cased device-name fragment.
PEAK_FP16 = [
    ("h200", 989e12),
    ("h100", 989e12),  # SXM; the PCIe card is lower (~756e12) but shares the name prefix
    ("a100", 312e12),
    ("l40s", 362e12),
    ("l4", 121e12),
    ("4090", 165e12),
    ("a10g", 70e12),
    ("t4", 65e12),
]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _randomise_controlnet_outputs(controlnet, seed: int) -> None:
    """A fresh ControlNet's output convs are zero (a no-op): give them fan-in-scaled random weights."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    convs = [m for m in controlnet.controlnet_down_blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    convs += [m for m in controlnet.controlnet_mid_block.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for m in convs:
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def _build_pipeline(device, dtype, full_text_encoder: bool):
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline,
                           UNet2DConditionModel, UniPCMultistepScheduler)
    from diffusers.models.controlnets import MultiControlNetModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
    )
    controlnets = []
    for seed in (1, 2):
        cn = ControlNetModel.from_unet(unet)
        _randomise_controlnet_outputs(cn, seed)
        controlnets.append(cn)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
        block_out_channels=(128, 256, 512, 512), norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    tokenizer = offline_clip.write_clip_tokenizer(os.path.join(tempfile.mkdtemp(prefix="standin_bench_tok_"), "tok"))
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer), max_position_embeddings=77,
        hidden_size=768, intermediate_size=3072, num_attention_heads=12,
        num_hidden_layers=12 if full_text_encoder else 2, hidden_act="quick_gelu",
    ))
    scheduler = UniPCMultistepScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
    )
    pipe = StableDiffusionControlNetPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        controlnet=MultiControlNetModel(controlnets), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _control_images(size: int):
    """Two control images (a depth-like ramp with a disc, a pose-like skeleton of bright lines)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size
    depth = 0.3 + 0.5 * y
    depth[(x - 0.5) ** 2 + (y - 0.55) ** 2 < 0.05] = 0.95
    pose = np.zeros((size, size, 3))
    for x0 in (0.3, 0.7):
        pose[int(0.2 * size):int(0.8 * size), int(x0 * size) - 2:int(x0 * size) + 2] = (1.0, 0.4, 0.1)
    pose[int(0.4 * size) - 2:int(0.4 * size) + 2, int(0.2 * size):int(0.8 * size)] = (0.1, 0.6, 1.0)
    depth_img = Image.fromarray((np.repeat(depth[..., None], 3, axis=2) * 255).astype(np.uint8))
    pose_img = Image.fromarray((pose * 255).astype(np.uint8))
    return [depth_img, pose_img]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _generate(pipe, device, images, size: int, steps: int):
    """One image, same seed each time; returns (images in [0,1] as np, seconds per denoising step).

    The step clock starts when the ControlNets are first called (prompt encoding and control-image
    preparation excluded) and each step ends at its ``callback_on_step_end`` (the VAE decode is not
    timed). The median step is returned: on a shared CPU one slow step would otherwise swing the ratio.
    """
    import torch

    marks = {"ends": []}

    def first_call(_module, _args):
        if "start" not in marks:
            _sync(device)
            marks["start"] = time.perf_counter()

    def on_step_end(_pipe, _i, _t, kwargs):
        _sync(device)
        marks["ends"].append(time.perf_counter())
        return kwargs

    hook = pipe.controlnet.register_forward_pre_hook(first_call)
    try:
        out = pipe(
            prompt=PROMPT, negative_prompt=NEGATIVE, image=images, height=size, width=size,
            num_inference_steps=steps, guidance_scale=7.5, controlnet_conditioning_scale=[1.0, 0.8],
            generator=torch.Generator("cpu").manual_seed(1234), output_type="np",
            callback_on_step_end=on_step_end,
        ).images
    finally:
        hook.remove()
    times = [marks["start"], *marks["ends"]]
    return out, statistics.median(b - a for a, b in zip(times, times[1:]))


def _step_flops(pipe, device, dtype, size: int) -> int:
    """FLOPs of one denoising step as the pipeline runs it: ControlNet ×2 + UNet on the CFG batch of 2."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    custom = {}
    cpu_op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_op is not None:  # not in torch's registry: without it the CPU attention FLOPs go uncounted
        custom[cpu_op.default] = cpu_sdpa

    lat = size // pipe.vae_scale_factor
    gen = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn((2, 4, lat, lat), generator=gen).to(device, dtype)
    text = torch.randn((2, 77, pipe.text_encoder.config.hidden_size), generator=gen).to(device, dtype)
    conds = [torch.rand((2, 3, size, size), generator=gen).to(device, dtype) for _ in range(2)]
    t = torch.tensor(500, device=device)
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    with torch.no_grad(), counter:
        down, mid = pipe.controlnet(latents, t, encoder_hidden_states=text, controlnet_cond=conds,
                                    conditioning_scale=[1.0, 0.8], return_dict=False)
        pipe.unet(latents, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                  mid_block_additional_residual=mid, return_dict=False)
    return counter.get_total_flops()


def _optimise(pipe, device, compile_models: bool, compile_mode: str) -> list[str]:
    """Our path, in place on the same weights. Returns what was applied."""
    import torch

    applied = []
    nets = [pipe.unet, *pipe.controlnet.nets]
    for module in (*nets, pipe.vae):
        module.to(memory_format=torch.channels_last)
    applied.append("channels_last")
    fused = 0
    for module in nets:
        if hasattr(module, "fuse_qkv_projections"):
            module.fuse_qkv_projections()
            fused += 1
    if fused:
        applied.append(f"fused QKV x{fused}")
    if compile_models:
        import torch._inductor.config as inductor

        inductor.conv_1x1_as_mm = True
        inductor.coordinate_descent_tuning = True
        inductor.epilogue_fusion = False
        inductor.coordinate_descent_check_all_directions = True
        for module in nets:
            module.compile(mode=compile_mode)
        applied.append(f"compiled ({compile_mode})")
    return applied


def _peak(device) -> tuple[float | None, str]:
    import torch

    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for fragment, peak in PEAK_FP16:
        if fragment in name.lower():
            return peak, name
    return None, name


def run() -> None:
    import numpy as np
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    size = _env_int("STANDIN_BENCH_SIZE", 512 if cuda else 256)
    steps = _env_int("STANDIN_BENCH_STEPS", 20 if cuda else 4)
    compile_models = bool(_env_int("STANDIN_BENCH_COMPILE", 1 if cuda else 0))
    compile_mode = os.environ.get("STANDIN_BENCH_COMPILE_MODE", "").strip() or "max-autotune-no-cudagraphs"
    if not cuda:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    warmup_steps = steps if cuda else 1  # on CPU one step warms the kernels; a full run would double the time

    pipe = _build_pipeline(device, dtype, full_text_encoder=cuda)
    images = _control_images(size)
    flops = _step_flops(pipe, device, dtype, size)

    _generate(pipe, device, images, size, warmup_steps)
    base_image, base_step = _generate(pipe, device, images, size, steps)

    applied = _optimise(pipe, device, compile_models, compile_mode)
    _generate(pipe, device, images, size, warmup_steps if not compile_models else steps)
    ours_image, ours_step = _generate(pipe, device, images, size, steps)

    diff = float(np.abs(ours_image.astype(np.float64) - base_image.astype(np.float64)).max())
    finite = bool(np.isfinite(base_image).all() and np.isfinite(ours_image).all())
    achieved = flops / ours_step
    peak, device_name = _peak(device)
    if peak is not None:
        share = f"{achieved / peak:.1%} of {device_name} peak ({peak / 1e12:.0f} TFLOP/s dense fp16)"
    elif cuda:
        share = f"peak unknown for {device_name}"
    else:
        share = "no GPU: share of peak n/a"
    verdict = "ok" if finite and diff <= TOLERANCE else f"OVER {TOLERANCE:g}" if finite else "NON-FINITE"
    print(f"SD1.5 + ControlNet x2, {size}x{size}, {steps} steps, {device.type} {str(dtype).removeprefix('torch.')}: "
          f"diffusers default {1 / base_step:.3g} it/s, ours {1 / ours_step:.3g} it/s "
          f"({base_step / ours_step:.2f}x; {', '.join(applied)}), max diff {diff:.1e} ({verdict}), "
          f"{flops / 1e12:.3g} TFLOP/step, {achieved / 1e9:.0f} GFLOP/s achieved "
          f"(baseline {flops / base_step / 1e9:.0f}), {share}")
