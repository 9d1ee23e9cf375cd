# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``diffusers`` engine: SD 1.5 / SDXL + ControlNets (depth, OpenPose, canny), plate then characters.

SD 1.5 and SDXL bases run with one ControlNet per control (a MultiControlNet); an SDXL base with no
separate SDXL depth ControlNet uses a ControlNet-Union (ProMax) model for all three controls.

For every frame of a take:

1. **Plate.** The set alone, from the background-only passes (``depth_bg``, ``canny_bg``) with the
   depth (and canny) ControlNets, the set's prompt and a seed derived from the set's seed, the job's
   seed and the take. Plates are cached (memory + disk) by set, seed, the frame's camera matrix, the
   background passes, size, profile and models, so a static camera generates its plate once.
2. **Characters.** Each visible character is inpainted inside its own (slightly dilated) mask over
   the image so far with ``StableDiffusionControlNetInpaintPipeline`` (the same loaded modules, via
   ``from_pipe``), controlled by the full depth, OpenPose and canny passes, prompted with the style,
   the character's prompt and its LoRA trigger word, with **only that character's LoRA** active. A
   bit part (no LoRA, but a reference image in the package) is inpainted with the IP-Adapter
   conditioned on its reference instead; the IP-Adapter's scale is 0 (and its image embeddings
   zero) for the plate and every other character.
3. **Composite.** Outside every character mask the frame is the plate, pixel for pixel; inside a
   character's mask it is that character's render.

Files, per take: ``take01/0001.png``… (kind "frame") and ``take01/plate/0001.png``… (kind "plate"), both
at the package's size. Profiles: ``preview`` (8 steps, generated at half size, short edge at least
``min_edge``) and ``final`` (28 steps, full size, long edge at most 1024 px for SD 1.5 / 1536 for SDXL);
frames are always delivered at the package's size. A base's ``preview_*`` keys in models.toml add a
few-step LoRA (active for the plate and every character, beside a character's own LoRA), its
scheduler, steps and guidance, and a tiny autoencoder (TAESD) to the preview profile; ``final`` never
uses them. ``spec.options`` (anything else is refused): see ``OPTIONS``.

Pipelines stay loaded between jobs (keyed by base + ControlNets + VAE + scheduler); LoRAs and the
IP-Adapter are loaded for a job and unloaded after it (the IP-Adapter's image encoder stays loaded).
Same inputs + seed → the same bytes (seeded CPU generators). Heavy libraries are imported lazily, so
importing this module costs nothing when another engine is in use.

Instrumentation for tests and debugging: ``adapter_log`` (cleared per run) holds one
``AdapterUse`` per denoising step of the plate (``character`` None) and of every character region,
observed inside the pipeline's ``callback_on_step_end`` from the LoRA layers of the UNet and text
encoder themselves (a disabled layer counts as no adapter) and from the UNet's IP-Adapter attention
processors (their scale); ``plate_log`` records per frame whether the plate was generated or came
from the memory or disk cache, and ``plate_generations`` counts plates actually generated.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import pathlib
import threading
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from ..engine import EngineInputError, JobSpec, Progress, ResultFile, frames_of, take_folder
from ..models import (FAMILIES, SCHEDULERS, BaseModel, ControlNetEntry, IPAdapterEntry, ModelRegistry,
                      image_encoder_config)

CONTROL_ORDER = ("depth", "openpose", "canny")
#: the background-only pass each control uses for the plate (OpenPose has none: no people on a plate)
PLATE_PASSES = {"depth": "depth_bg", "canny": "canny_bg"}
PROFILE_STEPS = {"preview": 8, "final": 28}
#: preview steps and guidance when the base has a few-step preview LoRA (and no preview_steps/_guidance)
FEW_STEP_PREVIEW = {"steps": 4, "guidance": 1.0}
DEFAULT_GUIDANCE = 6.0
DEFAULT_SCALES = {"depth": 0.8, "openpose": 1.0, "canny": 0.5, "union": 0.9}
DEFAULT_IP_ADAPTER_SCALE = 0.8
#: ControlNet-Union (xinsir ProMax) control types
UNION_MODES = {"openpose": 0, "depth": 1, "canny": 3}
PREVIEW_ADAPTER = "standin_preview"
OPTIONS = {
    "base": "base model name (default: the registry's first)",
    "steps": "denoising steps, overrides the profile's",
    "guidance": "classifier-free guidance scale",
    "strength": "how much of a character region is repainted (0–1]",
    "control_scales": "{depth, openpose, canny, union} → ControlNet strength 0–2",
    "controlnets": "{depth, openpose, canny, union} → ControlNet name (default: the first of each kind)",
    "scheduler": " | ".join(SCHEDULERS) + " (default dpm++, or the base's preview_scheduler in previews)",
    "plate_cache": "reuse plates for a static camera (default true)",
    "ip_adapter": "IP-Adapter name for bit parts (default: the first for the base's family)",
    "ip_adapter_scale": f"how closely a bit part follows its reference image, 0–2 "
                        f"(default {DEFAULT_IP_ADAPTER_SCALE})",
}
MAX_EDGE = {"sd15": 1024, "sdxl": 1536}
MEMORY_PLATES = 32
#: default size cap of the plate disk cache; the least recently used plates go first
PLATE_CACHE_BYTES = 2 * 1024**3


class AdapterUse(NamedTuple):
    """Adapters found active in the pipeline's layers during one denoising step of a region."""

    character: str | None  # None: the plate
    frame: int
    step: int
    unet: tuple[str, ...]  # LoRA adapters
    text_encoder: tuple[str, ...]
    ip_adapter: float = 0.0  # the IP-Adapter's scale in the UNet's attention processors (0: off or not loaded)


@dataclass
class _Lora:
    adapter: str
    file: str
    path: pathlib.Path
    weight: float
    trigger: str


@dataclass
class _IPAdapter:
    entry: IPAdapterEntry
    image_encoder: pathlib.Path
    scale: float
    references: dict  # bit part name → its reference image (RGB uint8)


@dataclass
class _Plan:
    base: BaseModel
    controls: dict  # control kind → ControlNetEntry, in CONTROL_ORDER (empty with a union model)
    union: ControlNetEntry | None
    steps: int
    guidance: float
    strength: float
    scales: dict
    scheduler: str
    plate_cache: bool
    frames: list[int]
    loras: dict = field(default_factory=dict)  # character name → _Lora
    ip_adapter: _IPAdapter | None = None  # only when a bit part needs it
    preview_lora: _Lora | None = None  # the base's few-step LoRA, in the preview profile
    vae: pathlib.Path | None = None  # the base's tiny autoencoder, in the preview profile

    @property
    def char_controls(self) -> list[str]:
        return list(CONTROL_ORDER) if self.union else list(self.controls)

    @property
    def plate_controls(self) -> list[str]:
        return [c for c in self.char_controls if c in PLATE_PASSES]

    @property
    def models(self) -> list[ControlNetEntry]:
        return [self.union] if self.union else list(self.controls.values())

    def adapters_for(self, character: str | None) -> tuple[list[str], list[float]]:
        """The LoRA adapters (and weights) active for a character's region, or for the plate (None)."""
        loras = [self.loras[character]] if character in self.loras else []
        loras += [self.preview_lora] if self.preview_lora else []
        return [lora.adapter for lora in loras], [lora.weight for lora in loras]

    @property
    def lora_uses(self) -> list[tuple[str, _Lora]]:
        """Each LoRA file to load (once), with who uses it, as error messages name it."""
        uses, seen = [], set()
        for name, lora in self.loras.items():
            if lora.adapter not in seen:
                seen.add(lora.adapter)
                uses.append((f"character {name}: the LoRA", lora))
        if self.preview_lora:
            uses.append((f"base model {self.base.name!r}: its preview_lora", self.preview_lora))
        return uses

    def fingerprint(self) -> str:
        """Names, sizes and dates of every model file a plate depends on (part of its cache key)."""
        files = [(self.base.name, self.base.path)] + [(e.name, e.path) for e in self.models]
        if self.preview_lora:
            files.append((f"preview LoRA x{self.preview_lora.weight}", self.preview_lora.path))
        if self.vae:
            files.append(("preview VAE", self.vae))
        return _digest([[name, str(path), _stat(path)] for name, path in files])


class DiffusersEngine:
    name = "diffusers"
    kind = "image"

    def __init__(self, registry: ModelRegistry, device=None, dtype=None, cache_dir=None,
                 min_edge: int = 256, max_edge: int | None = None, plate_cache_bytes: int = PLATE_CACHE_BYTES):
        import torch

        self.registry = registry
        if device is None:
            if torch.cuda.is_available():
                device = "cuda"
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if self.device.type in ("cuda", "mps") else torch.float32
        elif isinstance(dtype, str):
            dtype = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                     "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                     "float32": torch.float32, "fp32": torch.float32}[dtype.lower()]
        self.dtype = dtype
        if self.device.type == "cuda":  # repeatable results on the GPU too
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        _install_log_filter()
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir else None
        self.plate_cache_bytes = int(plate_cache_bytes)
        self.min_edge = int(min_edge)
        self.max_edge = max_edge
        self.adapter_log: list[AdapterUse] = []
        self.plate_log: list[tuple[int, str, str]] = []  # (frame, cache key, "generated"|"memory"|"disk")
        self.plate_generations = 0
        self._lock = threading.Lock()
        self._base_key = None
        self._base_pipe = None
        self._controlnets: dict[str, object] = {}
        self._vaes: dict[str, object] = {}  # preview autoencoders (TAESD), by path and date
        self._image_encoders: dict[str, object] = {}  # the IP-Adapter's CLIP image encoder, by path and date
        self._pipes: dict[tuple, tuple] = {}
        self._plates: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    # -- Engine interface ------------------------------------------------------------------------

    def describe(self) -> dict:
        import diffusers
        import torch

        return {
            "engine": self.name, "kind": self.kind, "device": str(self.device), "dtype": str(self.dtype),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "bases": [b.public() for b in self.registry.bases],
            "controlnets": [c.public() for c in self.registry.controlnets],
            "ip_adapters": [a.public() for a in self.registry.ip_adapters],
            "families": list(FAMILIES), "loaded": self._base_key[0] if self._base_key else None,
            "profiles": {p: {"steps": s} for p, s in PROFILE_STEPS.items()},
            "options": dict(OPTIONS),
        }

    def check(self, package, spec: JobSpec) -> None:
        self._plan(package, spec)

    def run(self, package, spec: JobSpec, out_dir: pathlib.Path, progress) -> list[ResultFile]:
        plan = self._plan(package, spec)
        out_dir = pathlib.Path(out_dir)
        with self._lock:
            self.adapter_log = []
            self.plate_log = []
            return self._run(package, spec, plan, out_dir, progress)

    # -- checking --------------------------------------------------------------------------------

    def _plan(self, package, spec: JobSpec) -> _Plan:
        spec.check()
        options = dict(spec.options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise EngineInputError(f"the diffusers engine has no option {', '.join(map(repr, unknown))}; "
                                   f"it knows {', '.join(sorted(OPTIONS))}.")
        base_name = options.get("base")
        if base_name is not None and not isinstance(base_name, str):
            raise EngineInputError("option base must be a model name.")
        base = self.registry.resolve_base(base_name)
        if base.family not in FAMILIES:
            raise EngineInputError(f"base model {base.name!r} is {base.family}; this engine runs "
                                   f"{' and '.join(FAMILIES)} bases.")
        controls, union = self._pick_controlnets(options, base)

        preview = base.preview if spec.profile == "preview" else None
        few_step = preview is not None and preview.lora is not None
        default_steps = (preview and preview.steps) or (FEW_STEP_PREVIEW["steps"] if few_step
                                                        else PROFILE_STEPS[spec.profile])
        default_guidance = preview.guidance if preview and preview.guidance is not None else (
            FEW_STEP_PREVIEW["guidance"] if few_step else DEFAULT_GUIDANCE)
        steps = options.get("steps", default_steps)
        if not _is_int(steps) or not 1 <= steps <= 150:
            raise EngineInputError("option steps must be a whole number from 1 to 150.")
        guidance = options.get("guidance", default_guidance)
        if not _is_number(guidance) or not 0 <= guidance <= 30:
            raise EngineInputError("option guidance must be a number from 0 to 30.")
        strength = options.get("strength", 1.0)
        if not _is_number(strength) or not 0 < strength <= 1:
            raise EngineInputError("option strength must be a number above 0 and at most 1.")
        scales = dict(DEFAULT_SCALES)
        given = options.get("control_scales", {})
        if not isinstance(given, dict) or set(given) - set(DEFAULT_SCALES):
            raise EngineInputError(f"option control_scales must map {', '.join(DEFAULT_SCALES)} to numbers.")
        for control, value in given.items():
            if not _is_number(value) or not 0 <= value <= 2:
                raise EngineInputError(f"control_scales.{control} must be a number from 0 to 2.")
            scales[control] = float(value)
        scheduler = options.get("scheduler", (preview and preview.scheduler) or "dpm++")
        if scheduler not in SCHEDULERS:
            raise EngineInputError(f"option scheduler must be one of {', '.join(SCHEDULERS)}.")
        plate_cache = options.get("plate_cache", True)
        if not isinstance(plate_cache, bool):
            raise EngineInputError("option plate_cache must be true or false.")

        frames = frames_of(package, spec)
        plan = _Plan(base, controls, union, int(steps), float(guidance), float(strength), scales, scheduler,
                     plate_cache, frames)
        needed = plan.char_controls + [PLATE_PASSES[c] for c in plan.plate_controls]
        for kind in needed:
            missing = [f for f in frames if not package.exists(kind, f)]
            if missing:
                raise EngineInputError(f"the {kind} pass is missing for frame {missing[0]} ({len(missing)} frames); "
                                       f"the diffusers engine needs {', '.join(needed)}: render the passes again.")
        plan.loras, bit_parts = self._character_adapters(package, frames)
        plan.ip_adapter = self._pick_ip_adapter(options, base, bit_parts)
        if preview is not None and preview.lora:
            plan.preview_lora = _Lora(PREVIEW_ADAPTER, preview.lora, self.registry.resolve_lora(preview.lora),
                                      preview.lora_weight, "")
        plan.vae = preview.vae if preview is not None else None
        return plan

    def _pick_controlnets(self, options: dict, base: BaseModel) -> tuple[dict, ControlNetEntry | None]:
        """(control → ControlNet, in CONTROL_ORDER; or {} and a ControlNet-Union for all of them)."""
        kinds = CONTROL_ORDER + ("union",)
        chosen = options.get("controlnets", {})
        if not isinstance(chosen, dict) or set(chosen) - set(kinds):
            raise EngineInputError(f"option controlnets must map {', '.join(kinds)} to ControlNet names.")
        picked = {}
        for control in kinds:
            if control in chosen:
                if not isinstance(chosen[control], str):
                    raise EngineInputError(f"option controlnets.{control} must be a ControlNet name.")
                entry = self.registry.resolve_controlnet(chosen[control])
                if entry.control != control or entry.family != base.family:
                    raise EngineInputError(f"ControlNet {entry.name!r} is a {entry.family} {entry.control} model, "
                                           f"not {base.family} {control}.")
                picked[control] = entry
            elif control != "union" or "depth" not in picked:
                found = self.registry.controlnets_for(control, base.family)
                if found:
                    picked[control] = found[0]
        union = None
        if "depth" not in picked or "union" in chosen:
            union = picked.get("union")
            if union is None or base.family != "sdxl":
                raise EngineInputError(f"no {base.family} depth ControlNet is configured: add a [[controlnet]] with "
                                       f'control = "depth" (or, for SDXL, "union") to models.toml.')
        return ({} if union else {c: picked[c] for c in CONTROL_ORDER if c in picked}), union

    def _character_adapters(self, package, frames) -> tuple[dict, dict]:
        """({character: its _Lora}, {bit part: its reference image}); a LoRA wins over a reference."""
        loras, bit_parts = {}, {}
        adapters: dict[pathlib.Path, str] = {}
        for character in package.characters:
            name = str(character.get("name", ""))
            missing = [f for f in frames if not package.exists("mask", f, character=name)]
            if missing:
                raise EngineInputError(f"the mask of {name} is missing for frame {missing[0]}.")
            file = str(character.get("lora_file") or "").strip()
            if not file:
                reference = package.reference(name)
                if reference is not None:
                    bit_parts[name] = reference
                continue
            try:
                path = self.registry.resolve_lora(file)
            except EngineInputError as error:
                raise EngineInputError(f"character {name}: {error}") from None
            weight = character.get("lora_weight", 1.0)
            if not _is_number(weight) or not -4 <= weight <= 4:
                raise EngineInputError(f"character {name}: lora_weight must be a number from -4 to 4.")
            adapter = adapters.setdefault(path, f"standin_{len(adapters)}")
            loras[name] = _Lora(adapter, file, path, float(weight), str(character.get("lora_trigger") or ""))
        return loras, bit_parts

    def _pick_ip_adapter(self, options: dict, base: BaseModel, bit_parts: dict) -> _IPAdapter | None:
        """The IP-Adapter (and its image encoder) for the job's bit parts; None when there are none."""
        name = options.get("ip_adapter")
        if name is not None and not isinstance(name, str):
            raise EngineInputError("option ip_adapter must be an IP-Adapter name.")
        scale = options.get("ip_adapter_scale", DEFAULT_IP_ADAPTER_SCALE)
        if not _is_number(scale) or not 0 <= scale <= 2:
            raise EngineInputError("option ip_adapter_scale must be a number from 0 to 2.")
        entry = self.registry.resolve_ip_adapter(name) if name else None
        if entry is not None and entry.family != base.family:
            raise EngineInputError(f"IP-Adapter {entry.name!r} is for {entry.family} models; base model "
                                   f"{base.name!r} is {base.family}.")
        if not bit_parts:
            return None
        if entry is None:
            found = self.registry.ip_adapters_for(base.family)
            if not found:
                who = next(iter(bit_parts))
                example = "ip-adapter_sdxl_vit-h" if base.family == "sdxl" else "ip-adapter_sd15"
                raise EngineInputError(
                    f"{who} is a bit part (a reference image and no LoRA), but no {base.family} IP-Adapter is "
                    f"configured: add one (e.g. {example}.safetensors) to a folder listed in [ip_adapters] dirs "
                    f"of models.toml, with its CLIP image encoder in image_encoder_dirs (ComfyUI: models/ipadapter/ "
                    f"and models/clip_vision/) — or give {who} a LoRA.")
            entry = found[0]
        return _IPAdapter(entry, self.registry.image_encoder_for(entry), float(scale), bit_parts)

    # -- models ----------------------------------------------------------------------------------

    def _load_base(self, base: BaseModel):
        import torch
        import diffusers

        key = (base.name, str(base.path), _stat(base.path), base.family)
        if self._base_key == key:
            return self._base_pipe
        self._base_key = self._base_pipe = None
        self._pipes.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if base.family == "sdxl":
            cls, common = diffusers.StableDiffusionXLPipeline, dict(dtype=self.dtype, add_watermarker=False)
        else:
            cls = diffusers.StableDiffusionPipeline
            common = dict(dtype=self.dtype, safety_checker=None, requires_safety_checker=False)
        from diffusers.loaders.single_file_utils import SingleFileComponentError

        try:
            if base.single_file:
                # with its configs from a local diffusers folder nothing is fetched; without, diffusers
                # looks them up in the Hugging Face cache
                extra = {"config": str(base.config), "local_files_only": True} if base.config else {}
                pipe = cls.from_single_file(str(base.path), **common, **extra)
            else:
                pipe = cls.from_pretrained(str(base.path), local_files_only=True, **common)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, SingleFileComponentError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = (" A single-file checkpoint needs the configs of its family: set config = \"<diffusers folder>\" "
                    "for it, or [single_file_configs] in models.toml." if base.single_file and not base.config else "")
            raise EngineInputError(f"base model {base.name!r} could not be loaded ({first[:300]}).{hint}") from None
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._base_key, self._base_pipe = key, pipe
        return pipe

    def _load_controlnet(self, entry: ControlNetEntry):
        import diffusers

        cls = diffusers.ControlNetUnionModel if entry.control == "union" else diffusers.ControlNetModel
        key = f"{entry.name}|{entry.path}|{_stat(entry.path)}"
        if key not in self._controlnets:
            try:
                if entry.single_file:
                    extra = {"config": str(entry.config)} if entry.config else {}
                    model = cls.from_single_file(str(entry.path), dtype=self.dtype, **extra)
                else:
                    model = cls.from_pretrained(str(entry.path), dtype=self.dtype, local_files_only=True)
            except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as error:
                raise EngineInputError(f"ControlNet {entry.name!r} could not be loaded ({error}).") from None
            self._controlnets[key] = model.to(self.device)
        return self._controlnets[key]

    def _load_vae(self, path: pathlib.Path):
        """A preview autoencoder (diffusers AutoencoderTiny folder), kept loaded while jobs use it."""
        import diffusers

        key = f"{path}|{_stat(path)}"
        if key not in self._vaes:
            try:
                vae = diffusers.AutoencoderTiny.from_pretrained(str(path), dtype=self.dtype, local_files_only=True,
                                                                use_safetensors=True)
            except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
                raise EngineInputError(f"the preview_vae {path.name!r} of base model could not be loaded ({error}); "
                                       f"it must be a diffusers AutoencoderTiny folder with .safetensors weights.") \
                    from None
            self._vaes.clear()
            self._vaes[key] = vae.to(self.device)
        return self._vaes[key]

    def _load_image_encoder(self, path: pathlib.Path):
        """The IP-Adapter's CLIP vision encoder: a transformers folder, or one .safetensors file (a
        ComfyUI clip_vision/ file: its config is read off the tensor shapes unless config.json is beside it)."""
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        key = f"{path}|{_stat(path)}"
        if key in self._image_encoders:
            return self._image_encoders[key]
        folder = path if path.is_dir() else path.parent
        try:
            with _quiet_transformers():
                if path.is_dir() or (path.name == "model.safetensors" and (folder / "config.json").is_file()):
                    encoder = CLIPVisionModelWithProjection.from_pretrained(
                        str(folder), dtype=self.dtype, local_files_only=True, use_safetensors=True)
                else:
                    from safetensors.torch import load_file

                    encoder, info = CLIPVisionModelWithProjection.from_pretrained(
                        None, config=CLIPVisionConfig(**image_encoder_config(path)), state_dict=load_file(str(path)),
                        dtype=self.dtype, output_loading_info=True)
                    missing = sorted(info.get("missing_keys") or ())
                    if missing:
                        raise ValueError(f"it lacks {len(missing)} tensors, e.g. {missing[0]}")
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EngineInputError(f"the IP-Adapter image encoder {path.name!r} could not be loaded ({first[:300]}); "
                                   f"use the CLIP vision encoder the IP-Adapter was trained with.") from None
        self._image_encoders.clear()
        self._image_encoders[key] = encoder.to(self.device).eval()
        return self._image_encoders[key]

    def _pipelines(self, plan: _Plan):
        """(plate pipeline, character inpaint pipeline), sharing the base's loaded modules."""
        import diffusers
        from diffusers.models.controlnets import MultiControlNetModel

        base_pipe = self._load_base(plan.base)
        key = (self._base_key, tuple(e.name for e in plan.models), plan.scheduler, str(plan.vae))
        if key not in self._pipes:
            extra = {"add_watermarker": False} if plan.base.family == "sdxl" else {}
            if plan.vae is not None:
                extra["vae"] = self._load_vae(plan.vae)
            if plan.union:
                plate_cls = diffusers.StableDiffusionXLControlNetUnionPipeline
                inpaint_cls = diffusers.StableDiffusionXLControlNetUnionInpaintPipeline
                plate_net = inpaint_net = self._load_controlnet(plan.union)
            else:
                if plan.base.family == "sdxl":
                    plate_cls = diffusers.StableDiffusionXLControlNetPipeline
                    inpaint_cls = diffusers.StableDiffusionXLControlNetInpaintPipeline
                else:
                    plate_cls = diffusers.StableDiffusionControlNetPipeline
                    inpaint_cls = diffusers.StableDiffusionControlNetInpaintPipeline
                plate_net = MultiControlNetModel([self._load_controlnet(plan.controls[c])
                                                  for c in plan.plate_controls])
                inpaint_net = MultiControlNetModel([self._load_controlnet(plan.controls[c])
                                                    for c in plan.char_controls])
            plate = plate_cls.from_pipe(base_pipe, dtype=self.dtype, controlnet=plate_net,
                                        scheduler=self._scheduler(base_pipe, plan.scheduler), **extra)
            inpaint = inpaint_cls.from_pipe(base_pipe, dtype=self.dtype, controlnet=inpaint_net,
                                            scheduler=self._scheduler(base_pipe, plan.scheduler), **extra)
            for pipe in (plate, inpaint):
                pipe.set_progress_bar_config(disable=True)
            used = {f"{e.name}|{e.path}|{_stat(e.path)}" for e in plan.models}
            for unused in set(self._controlnets) - used:  # keep only what these pipelines use in memory
                del self._controlnets[unused]
            self._pipes.clear()  # one set of pipelines at a time (they share modules; this drops only wrappers)
            self._pipes[key] = (plate, inpaint)
        return self._pipes[key]

    @staticmethod
    def _control_args(plan: _Plan, controls: list[str], images: list, inpaint: bool) -> dict:
        """The ControlNet arguments of a pipeline call: images, scales (and modes for a union model)."""
        if plan.union:
            return {"control_image": images, "control_mode": [UNION_MODES[c] for c in controls],
                    "controlnet_conditioning_scale": plan.scales["union"]}
        return {"control_image" if inpaint else "image": images,
                "controlnet_conditioning_scale": [plan.scales[c] for c in controls]}

    @staticmethod
    def _scheduler(pipe, kind: str):
        from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                               LCMScheduler)

        config = pipe.scheduler.config
        if kind == "lcm":
            return LCMScheduler.from_config(config)
        if kind == "dpm++":
            return DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True,
                                                           algorithm_type="dpmsolver++")
        if kind == "ddim":
            return DDIMScheduler.from_config(config)
        if kind == "euler_a":
            return EulerAncestralDiscreteScheduler.from_config(config)
        return type(pipe.scheduler).from_config(config)

    # -- the job ---------------------------------------------------------------------------------

    def _run(self, package, spec, plan, out_dir, progress) -> list[ResultFile]:
        characters = [c for c in package.characters]
        char_steps = min(int(plan.steps * plan.strength), plan.steps) or 1
        per_frame = plan.steps + len(characters) * char_steps
        total = spec.takes * len(plan.frames) * per_frame
        counter = {"done": 0}
        progress(Progress(0, total, None, "loading models"))
        plate_pipe, inpaint = self._pipelines(plan)
        gen_w, gen_h = self._generation_size(package.width, package.height, spec.profile, plan.base.family)
        meta_set = package.meta.get("set") or {}
        style = str(package.meta.get("style_prompt") or "")
        negative = str(package.meta.get("negative_prompt") or "")
        cache_dir = self.cache_dir or (out_dir.parent / "plate-cache")
        results: list[ResultFile] = []

        def report(frame, message):
            counter["done"] += 1
            progress(Progress(min(counter["done"], total), total, frame, message))

        loras_loaded = self._load_loras(inpaint, plan)
        ip_adapter = None
        try:
            ip_adapter = self._load_ip_adapter(inpaint, plan)
            for take in range(1, spec.takes + 1):
                folder = out_dir / take_folder(take)
                (folder / "plate").mkdir(parents=True, exist_ok=True)
                plate_seed = _mix("plate", meta_set.get("seed", 0), spec.seed, take)
                for frame in plan.frames:
                    frame_start = counter["done"]
                    # 1. the plate: the set alone, no character LoRA, the IP-Adapter off -----------------
                    extra = self._activate(inpaint, plan, None, loras_loaded, ip_adapter)
                    plate_gen = self._plate(package, plan, spec, frame, plate_pipe,
                                            (gen_w, gen_h), plate_seed, style, negative, cache_dir, extra,
                                            lambda i, frame=frame: report(frame, "plate"))
                    counter["done"] = frame_start + plan.steps  # a cached plate skips its steps
                    plate_out = _resize(plate_gen, package.width, package.height)
                    composite_gen, composite_out = plate_gen.copy(), plate_out.copy()

                    # 2. characters, each inside its own mask over the image so far ---------------------
                    control_args = self._control_args(plan, plan.char_controls, [
                        _pil(_resize(_rgb(package.image(c, frame)), gen_w, gen_h)) for c in plan.char_controls],
                        inpaint=True)
                    for character in characters:
                        name = str(character["name"])
                        start = counter["done"]
                        mask_out = package.mask(name, frame)
                        mask_gen = _resize(mask_out.astype(np.uint8) * 255, gen_w, gen_h) > 0
                        if mask_gen.any():
                            extra = self._activate(inpaint, plan, name, loras_loaded, ip_adapter)
                            lora = plan.loras.get(name)
                            prompt = _join(style, character.get("prompt"), lora.trigger if lora else "")
                            render = self._inpaint(
                                inpaint, plan, name, frame, composite_gen, _dilate(mask_gen), control_args,
                                prompt, negative, _mix("character", spec.seed, take, name), extra,
                                lambda i, frame=frame, name=name: report(frame, name))
                            composite_gen[mask_gen] = render[mask_gen]
                            render_out = _resize(render, package.width, package.height)
                            composite_out[mask_out] = render_out[mask_out]
                        counter["done"] = start + char_steps

                    # 3. write: outside every character mask the frame is the plate, exactly ------------
                    frame_path = folder / f"{frame:04d}.png"
                    plate_path = folder / "plate" / f"{frame:04d}.png"
                    _write_png(frame_path, composite_out)
                    _write_png(plate_path, plate_out)
                    results.append(ResultFile(frame_path.relative_to(out_dir).as_posix(), take, frame, "frame"))
                    results.append(ResultFile(plate_path.relative_to(out_dir).as_posix(), take, frame, "plate"))
                    progress(Progress(min(counter["done"], total), total, frame, "frame written"))
        finally:
            if ip_adapter is not None:
                ip_adapter.unload()
            if loras_loaded:
                inpaint.enable_lora()
                inpaint.unload_lora_weights()
        progress(Progress(total, total, None, "done"))
        return results

    @staticmethod
    def _activate(pipe, plan: _Plan, character: str | None, loras_loaded: bool, ip_adapter) -> dict:
        """Switch the shared UNet and text encoders to ``character``'s adapters (None: the plate's);
        returns the extra pipeline arguments this needs (the IP-Adapter's image embeddings)."""
        if loras_loaded:
            adapters, weights = plan.adapters_for(character)
            if adapters:
                pipe.enable_lora()
                pipe.set_adapters(adapters, adapter_weights=weights)
            else:
                pipe.disable_lora()
        if ip_adapter is None:
            return {}
        return ip_adapter.activate(character)

    def _load_loras(self, pipe, plan: _Plan) -> bool:
        done = set()
        try:
            for owner, lora in plan.lora_uses:
                try:
                    with _quiet_transformers(), warnings.catch_warnings():
                        # transformers' load report lists the base weights as "missing"; peft warns that a
                        # second adapter joins the first — both expected here
                        warnings.filterwarnings("ignore", message=".*peft_config.*")
                        pipe.load_lora_weights(str(lora.path), adapter_name=lora.adapter)
                except (OSError, ValueError, KeyError, RuntimeError) as error:
                    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise EngineInputError(f"{owner} {lora.file!r} does not fit base model "
                                           f"{plan.base.name!r} ({first[:300]}).") from None
                if not any(lora.adapter in names for names in pipe.get_list_adapters().values()):
                    raise EngineInputError(f"{owner} {lora.file!r} holds no weights for "
                                           f"base model {plan.base.name!r} (a LoRA for another model family?).")
                done.add(lora.adapter)
        except BaseException:
            try:
                pipe.unload_lora_weights()  # also whatever a failed load left half-injected
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        return bool(done)

    def _load_ip_adapter(self, pipe, plan: _Plan) -> "_LoadedIPAdapter | None":
        """Load the job's IP-Adapter into ``pipe`` (safetensors only) and embed each bit part's reference."""
        if plan.ip_adapter is None:
            return None
        import torch
        from transformers import CLIPImageProcessor

        ip = plan.ip_adapter
        encoder = self._load_image_encoder(ip.image_encoder)
        loaded = _LoadedIPAdapter(pipe, ip.scale)
        size = encoder.config.image_size
        pipe.register_modules(image_encoder=encoder,
                              feature_extractor=CLIPImageProcessor(size=size, crop_size=size))
        try:
            with _quiet_transformers():
                pipe.load_ip_adapter(str(ip.entry.path.parent), subfolder="", weight_name=ip.entry.path.name,
                                     image_encoder_folder=None, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            loaded.unload()
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise EngineInputError(f"the IP-Adapter {ip.entry.name!r} does not fit base model {plan.base.name!r} "
                                   f"({first[:300]}); pick one for {plan.base.family} with option ip_adapter.") \
                from None
        try:
            guided = plan.guidance > 1 and pipe.unet.config.time_cond_proj_dim is None
            with torch.no_grad():
                for name, reference in ip.references.items():
                    loaded.embeds[name] = pipe.prepare_ip_adapter_image_embeds(
                        [_pil(reference)], None, self.device, 1, guided)[0]
        except (ValueError, RuntimeError) as error:
            loaded.unload()
            raise EngineInputError(f"the image encoder {ip.image_encoder.name!r} does not fit IP-Adapter "
                                   f"{ip.entry.name!r} ({str(error).strip()[:300]}).") from None
        return loaded

    def _plate(self, package, plan, spec, frame, pipe, size, seed, style, negative, cache_dir, extra,
               step_report) -> np.ndarray:
        gen_w, gen_h = size
        meta_set = package.meta.get("set") or {}
        plate_controls = plan.plate_controls
        images = [_resize(_rgb(package.image(PLATE_PASSES[c], frame)), gen_w, gen_h) for c in plate_controls]
        camera = (package.meta.get("camera_matrices") or {}).get(str(frame))
        prompt = _join(style, meta_set.get("prompt"))
        key = _digest({
            "set": meta_set.get("name"), "set_seed": meta_set.get("seed"), "seed": seed, "camera": camera,
            "size": [gen_w, gen_h], "profile": spec.profile, "steps": plan.steps, "guidance": plan.guidance,
            "scheduler": plan.scheduler, "prompt": prompt, "negative": negative,
            "models": plan.fingerprint(), "controls": plate_controls,
            "scales": self._control_args(plan, plate_controls, [], inpaint=False)["controlnet_conditioning_scale"],
            "passes": [hashlib.sha256(np.ascontiguousarray(i).tobytes()).hexdigest() for i in images],
            "dtype": str(self.dtype), "device": self.device.type,
        })
        if plan.plate_cache:
            if key in self._plates:
                self._plates.move_to_end(key)
                self.plate_log.append((frame, key, "memory"))
                return self._plates[key]
            cached = cache_dir / f"{key}.png"
            if cached.is_file():
                pixels = cv2.imread(str(cached), cv2.IMREAD_COLOR)
                if pixels is not None and pixels.shape[:2] == (gen_h, gen_w):
                    plate = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
                    _touch(cached)  # recently used: the last to be evicted
                    self._remember(key, plate)
                    self.plate_log.append((frame, key, "disk"))
                    return plate

        def on_step(pipe_, i, t, kwargs):
            self._observe(pipe_, None, frame, i)
            step_report(i)
            return {}

        output = pipe(
            prompt=prompt, negative_prompt=negative or None,
            **self._control_args(plan, plate_controls, [_pil(i) for i in images], inpaint=False),
            num_inference_steps=plan.steps, guidance_scale=plan.guidance, height=gen_h, width=gen_w,
            generator=_generator(seed), output_type="np", callback_on_step_end=on_step, **extra,
        ).images[0]
        plate = _to_uint8(output)
        self.plate_generations += 1
        self.plate_log.append((frame, key, "generated"))
        if plan.plate_cache:
            self._remember(key, plate)
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                _write_png(cache_dir / f"{key}.png", plate)
                trim_plate_cache(cache_dir, self.plate_cache_bytes)
            except OSError:
                pass  # the disk cache is an optimisation
        return plate

    def forget_plates(self) -> None:
        """Drop the in-memory plate cache (the disk cache stays)."""
        self._plates.clear()

    def _remember(self, key, plate):
        self._plates[key] = plate
        self._plates.move_to_end(key)
        while len(self._plates) > MEMORY_PLATES:
            self._plates.popitem(last=False)

    def _inpaint(self, pipe, plan, name, frame, image, mask, control_args, prompt, negative, seed, extra,
                 step_report) -> np.ndarray:
        gen_h, gen_w = image.shape[:2]

        def on_step(pipe_, i, t, kwargs):
            self._observe(pipe_, name, frame, i)
            step_report(i)
            return {}

        output = pipe(
            prompt=prompt, negative_prompt=negative or None, image=_pil(image),
            mask_image=_pil(mask.astype(np.uint8) * 255), **control_args, strength=plan.strength,
            num_inference_steps=plan.steps,
            guidance_scale=plan.guidance, height=gen_h, width=gen_w, generator=_generator(seed), output_type="np",
            callback_on_step_end=on_step, **extra,
        ).images[0]
        return _to_uint8(output)

    def _observe(self, pipe, character: str | None, frame: int, step: int) -> None:
        """Log the adapters as the layers hold them while this region (or the plate) is being denoised."""
        encoders = (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None))
        self.adapter_log.append(AdapterUse(character, frame, step, _active_adapters(pipe.unet),
                                           tuple(sorted(set().union(*map(_active_adapters, encoders)))),
                                           _ip_adapter_scale(pipe.unet)))

    def _generation_size(self, width: int, height: int, profile: str, family: str) -> tuple[int, int]:
        """Final: the package size (long edge capped); preview: half of that, short edge ≥ min_edge."""
        cap = self.max_edge or MAX_EDGE[family]
        scale = min(1.0, cap / max(width, height))
        if profile == "preview":
            floor = min(self.min_edge, min(width, height) * scale)
            scale = max(scale * 0.5, floor / min(width, height))
        return max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8)


# -- helpers -----------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _join(*parts) -> str:
    return ", ".join(str(p).strip() for p in parts if p and str(p).strip())


def _mix(*parts) -> int:
    """A 32-bit seed from several parts, stable across runs and platforms."""
    return int.from_bytes(hashlib.sha256(json.dumps(parts, default=str).encode()).digest()[:4], "little")


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _stat(path: pathlib.Path):
    """Size and mtime of a file, or of a folder's files, so a replaced model invalidates caches."""
    try:
        if path.is_file():
            s = path.stat()
            return f"{s.st_size}:{s.st_mtime_ns}"
        return _digest(sorted([p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns]
                              for p in path.rglob("*") if p.is_file()))
    except OSError:
        return None


def trim_plate_cache(folder: pathlib.Path, max_bytes: int) -> list[pathlib.Path]:
    """Delete the least recently used plates (oldest modification time: a cache hit touches its file)
    until ``folder``'s plates take at most ``max_bytes``; returns what was deleted."""
    plates = []
    for path in folder.glob("*.png"):
        if path.name.startswith("."):
            continue  # a plate being written
        try:
            info = path.stat()
        except OSError:
            continue
        plates.append((info.st_mtime_ns, path.name, info.st_size, path))
    plates.sort()
    total = sum(size for _, _, size, _ in plates)
    deleted = []
    for _, _, size, path in plates:
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        total -= size
        deleted.append(path)
    return deleted


def _touch(path: pathlib.Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _generator(seed: int):
    import torch

    return torch.Generator("cpu").manual_seed(int(seed))


def _rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.float64) / max(1, np.iinfo(pixels.dtype).max) * 255).round().astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    shrink = width < pixels.shape[1]
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """A little room around a character for the inpaint to blend into (the composite stays exact)."""
    radius = max(1, round(max(mask.shape) / 128))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _pil(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray(pixels)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))


def _write_png(path: pathlib.Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    os.replace(tmp, path)


class _EmptyFp32Warning(logging.Filter):
    """diffusers 0.42 warns 'modules … should be kept in float32: []' on every dtype cast, even with none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def _install_log_filter() -> None:
    log = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(f, _EmptyFp32Warning) for f in log.filters):
        log.addFilter(_EmptyFp32Warning())


class _quiet_transformers:
    def __enter__(self):
        try:
            from transformers.utils import logging as tlog
        except ImportError:
            self.restore = None
            return self
        self.restore = (tlog, tlog.get_verbosity())
        tlog.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        if self.restore:
            tlog, level = self.restore
            tlog.set_verbosity(level)
        return False


def _active_adapters(model) -> tuple[str, ...]:
    """Adapters whose LoRA weights actually take part in ``model``'s forward pass right now."""
    if model is None:
        return ()
    from peft.tuners.tuners_utils import BaseTunerLayer

    active = set()
    for module in model.modules():
        if isinstance(module, BaseTunerLayer) and not module.disable_adapters and not module.merged:
            weights = getattr(module, "lora_A", {})
            active.update(a for a in module.active_adapters if a in weights)
    return tuple(sorted(active))


class _LoadedIPAdapter:
    """An IP-Adapter loaded into a pipeline for one job: the bit parts' image embeddings, switching
    its scale per region, and ``unload`` putting the UNet's attention processors back as they were."""

    def __init__(self, pipe, scale: float):
        self.pipe, self.scale = pipe, scale
        self.embeds: dict = {}  # bit part → image embeddings ([negative;] positive), as the pipeline takes them
        self._processors = dict(pipe.unet.attn_processors)
        self._feature_extractor = getattr(pipe, "feature_extractor", None)

    def activate(self, character: str | None) -> dict:
        """Scale on with ``character``'s embeddings for a bit part; scale 0 with zero embeddings otherwise
        (the UNet, once it holds an IP-Adapter, needs image embeddings on every call)."""
        import torch

        embeds = self.embeds.get(character)
        self.pipe.set_ip_adapter_scale(self.scale if embeds is not None else 0.0)
        if embeds is None:
            embeds = torch.zeros_like(next(iter(self.embeds.values())))
        return {"ip_adapter_image_embeds": [embeds]}

    def unload(self) -> None:
        pipe = self.pipe
        if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
            pipe.unload_ip_adapter()
        pipe.image_encoder = None
        pipe.register_to_config(image_encoder=[None, None])
        pipe.unet.set_attn_processor(self._processors)
        pipe.register_modules(feature_extractor=self._feature_extractor)


def _ip_adapter_scale(unet) -> float:
    """The largest IP-Adapter scale in ``unet``'s attention processors (0 without an IP-Adapter)."""
    scales = []
    for processor in unet.attn_processors.values():
        for scale in getattr(processor, "scale", []) if hasattr(processor, "to_k_ip") else []:
            scales.extend(scale if isinstance(scale, list) else [scale])
    return float(max(scales, default=0.0))
