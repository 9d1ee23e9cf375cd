# SPDX-License-Identifier: GPL-3.0-or-later
"""The model registry: which weights the backend may load, read from ``models.toml``. Pure Python.

A request names models (a base checkpoint, ControlNets, a character's LoRA file); the registry turns
a name into a file **only inside the folders the toml configures**. A name that tries to leave its
folder (``..``, an absolute path, a backslash, a symlink pointing elsewhere) or names a pickle
(``.ckpt``, ``.bin``, ``.pt``: loading one can run arbitrary code) is refused with an
``EngineInputError`` that says what to do. Problems with the toml itself — a syntax error, a
missing folder, an unknown key — are a ``ValueError`` when the server starts.

Format (see ``models.example.toml``)::

    comfyui_root = "/path/to/ComfyUI/models"   # optional: adds checkpoints/, controlnet/, loras/,
                                               # ipadapter/ and clip_vision/ (IP-Adapter image encoders)

    [[base]]
    name = "sd15"                 # what requests and the Blender add-on call it
    path = "models/sd15"          # a diffusers folder or one .safetensors checkpoint
    family = "sd15"               # "sd15" (default) | "sdxl"
    config = "configs/sd15"       # optional, single-file only: a diffusers folder holding its configs
                                  # (default: [single_file_configs] of its family)
    preview_lora = "lcm-lora-sdv1-5.safetensors"  # optional: a few-step LoRA (in [loras] dirs) for previews
    preview_lora_weight = 1.0     # optional (1.0)
    preview_scheduler = "lcm"     # optional: the scheduler previews use (see SCHEDULERS)
    preview_steps = 4             # optional: preview steps (4 with a preview LoRA, else 8)
    preview_guidance = 1.0        # optional: preview guidance (1.0 with a preview LoRA, else 6)
    preview_vae = "models/taesd"  # optional: a diffusers AutoencoderTiny folder previews decode with

    [single_file_configs]         # optional: configs for single-file checkpoints (ComfyUI's too)
    sd15 = "configs/sd15"         # a diffusers folder of the family; only its .json/.txt files are read
    sdxl = "configs/sdxl"

    [[controlnet]]
    name = "depth"
    path = "models/controlnet-depth"   # a diffusers folder or one .safetensors file
    control = "depth"             # "depth" | "openpose" | "canny" | "union"
    family = "sd15"               # optional; "sdxl" for union by default

    [loras]
    dirs = ["loras"]

    [ip_adapters]
    dirs = ["ipadapter"]                  # every .safetensors IP-Adapter in these folders
    image_encoder_dirs = ["clip_vision"]  # CLIP image encoders; each adapter gets one whose size fits

    [ip_adapters.face]                    # or name one, with its encoder
    file = "ipadapter/ip-adapter-plus-face_sd15.safetensors"
    image_encoder = "image_encoder"       # a transformers folder (config.json) or one .safetensors
    family = "sd15"                       # optional: guessed from the weights

Relative paths are relative to the toml's folder.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import struct
import tomllib
from dataclasses import dataclass

from .engine import EngineInputError

FAMILIES = ("sd15", "sdxl")
CONTROLS = ("depth", "openpose", "canny", "union")
#: schedulers a job (option scheduler) or a base's preview_scheduler can name
SCHEDULERS = ("dpm++", "ddim", "euler_a", "lcm", "base")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
WEIGHTS_SUFFIX = ".safetensors"
#: listing a folder stops after this many files (a mistaken dirs = ["/"] must not hang the server)
MAX_LISTED = 5000

_TOP_KEYS = {"base", "controlnet", "loras", "ip_adapters", "comfyui_root", "single_file_configs"}
_PREVIEW_KEYS = {"preview_lora", "preview_lora_weight", "preview_scheduler", "preview_steps", "preview_guidance",
                 "preview_vae"}
_BASE_KEYS = {"name", "path", "family", "config"} | _PREVIEW_KEYS
_CONTROLNET_KEYS = {"name", "path", "control", "family", "config"}
_IP_ADAPTER_KEYS = {"file", "image_encoder", "family"}
_COMFY_FOLDERS = {"checkpoints": "checkpoints", "loras": "loras", "controlnet": "controlnet",
                  "ipadapter": "ipadapter", "clip_vision": "clip_vision"}


class _Weights:
    """What base models and ControlNets share: a path that is a folder or one .safetensors file."""

    path: pathlib.Path

    @property
    def single_file(self) -> bool:
        return self.path.suffix.lower() == WEIGHTS_SUFFIX


@dataclass(frozen=True)
class Preview:
    """What a base's ``preview`` profile uses besides fewer steps and a smaller size, when configured."""

    lora: str | None = None  # a few-step LoRA (LCM, Hyper-SD, Lightning…), by its name in [loras] dirs
    lora_weight: float = 1.0
    scheduler: str | None = None  # one of SCHEDULERS, e.g. "lcm" for an LCM LoRA
    steps: int | None = None
    guidance: float | None = None
    vae: pathlib.Path | None = None  # a diffusers AutoencoderTiny folder (TAESD)


@dataclass(frozen=True)
class BaseModel(_Weights):
    name: str
    path: pathlib.Path
    family: str = "sd15"
    #: optional diffusers folder with the configs of a single-file checkpoint (offline loading)
    config: pathlib.Path | None = None
    preview: Preview = Preview()

    def public(self) -> dict:
        return {"name": self.name, "family": self.family, "format": "single-file" if self.single_file else "diffusers"}


@dataclass(frozen=True)
class ControlNetEntry(_Weights):
    name: str
    path: pathlib.Path
    control: str  # depth | openpose | canny | union | other
    family: str = "sd15"
    config: pathlib.Path | None = None

    def public(self) -> dict:
        return {"name": self.name, "control": self.control, "family": self.family}


@dataclass(frozen=True)
class IPAdapterEntry:
    """An IP-Adapter (.safetensors with ``image_proj.*`` and ``ip_adapter.*`` tensors) and its image encoder."""

    name: str
    path: pathlib.Path
    family: str = "sd15"
    #: a CLIP vision encoder (transformers folder or .safetensors); None: one from image_encoder_dirs that fits
    image_encoder: pathlib.Path | None = None

    def public(self) -> dict:
        return {"name": self.name, "family": self.family}


class ModelRegistry:
    """Models named in ``models.toml`` plus whatever the configured folders hold (scanned on demand,
    so a LoRA dropped into a folder shows up without restarting the server)."""

    def __init__(self, root: pathlib.Path, bases: list[BaseModel], controlnets: list[ControlNetEntry],
                 lora_dirs: list[pathlib.Path], ip_adapter_dirs: list[pathlib.Path],
                 checkpoint_dirs: list[pathlib.Path] = (), controlnet_dirs: list[pathlib.Path] = (),
                 ip_adapters: list[IPAdapterEntry] = (), image_encoder_dirs: list[pathlib.Path] = (),
                 single_file_configs: dict[str, pathlib.Path] | None = None):
        self.root = pathlib.Path(root)
        #: family → diffusers folder with the configs for single-file checkpoints that name none
        self.single_file_configs = dict(single_file_configs or {})
        self._bases = list(bases)
        self._controlnets = list(controlnets)
        self._ip_adapters = list(ip_adapters)
        self.lora_dirs = list(lora_dirs)
        self.ip_adapter_dirs = list(ip_adapter_dirs)
        self.image_encoder_dirs = list(image_encoder_dirs)
        self.checkpoint_dirs = list(checkpoint_dirs)
        self.controlnet_dirs = list(controlnet_dirs)

    # -- what there is -------------------------------------------------------------------------

    @property
    def bases(self) -> list[BaseModel]:
        return _with_scanned(self._bases, self.checkpoint_dirs, self._scanned_base)

    def _scanned_base(self, name: str, path: pathlib.Path) -> BaseModel:
        """A checkpoint found in a checkpoints/ folder, with the configs its family's single-file checkpoints use."""
        family = guess_family(path)
        return BaseModel(name, path, family, self.single_file_configs.get(family))

    @property
    def controlnets(self) -> list[ControlNetEntry]:
        return _with_scanned(self._controlnets, self.controlnet_dirs,
                             lambda name, path: ControlNetEntry(name, path, guess_control(name),
                                                                guess_family(path, name)))

    def loras(self) -> list[str]:
        return _scan_all(self.lora_dirs)

    @property
    def ip_adapters(self) -> list[IPAdapterEntry]:
        return _with_scanned(self._ip_adapters, self.ip_adapter_dirs,
                             lambda name, path: IPAdapterEntry(name, path, guess_ip_adapter_family(path)))

    def listing(self) -> dict:
        """Names and kinds for clients (``/v1/models``); never a path on the server's disk."""
        return {
            "bases": [b.public() for b in self.bases],
            "controlnets": [c.public() for c in self.controlnets],
            "loras": [{"name": n} for n in self.loras()],
            "ip_adapters": [a.public() for a in self.ip_adapters],
        }

    def controlnets_for(self, control: str, family: str) -> list[ControlNetEntry]:
        return [c for c in self.controlnets if c.control == control and c.family == family]

    def ip_adapters_for(self, family: str) -> list[IPAdapterEntry]:
        return [a for a in self.ip_adapters if a.family == family]

    # -- names to files ------------------------------------------------------------------------

    def resolve_base(self, name: str | None = None) -> BaseModel:
        bases = self.bases
        if name is None or name == "":
            if not bases:
                raise EngineInputError("no base model is configured: add a [[base]] to models.toml.")
            return bases[0]
        _check_name(name, "base model")
        for base in bases:
            if base.name == name:
                return base
        for folder in self.checkpoint_dirs if _names_a_file(name) else ():  # a path the scan did not list
            path = _safe_path(folder, name, "base model")
            if path is not None:
                return self._scanned_base(name, path)
        raise _unknown("base model", name, [b.name for b in bases])

    def resolve_controlnet(self, name: str) -> ControlNetEntry:
        _check_name(name, "ControlNet")
        entries = self.controlnets
        for entry in entries:
            if entry.name == name:
                return entry
        for folder in self.controlnet_dirs if _names_a_file(name) else ():
            path = _safe_path(folder, name, "ControlNet")
            if path is not None:
                return ControlNetEntry(name, path, guess_control(name), guess_family(path, name))
        raise _unknown("ControlNet", name, [c.name for c in entries])

    def resolve_lora(self, name: str) -> pathlib.Path:
        return self._resolve_file(self.lora_dirs, name, "LoRA", self.loras)

    def resolve_ip_adapter(self, name: str) -> IPAdapterEntry:
        _check_name(name, "IP-Adapter")
        entries = self.ip_adapters
        for entry in entries:
            if entry.name == name:
                return entry
        for folder in self.ip_adapter_dirs if _names_a_file(name) else ():
            path = _safe_path(folder, name, "IP-Adapter")
            if path is not None:
                return IPAdapterEntry(name, path, guess_ip_adapter_family(path))
        raise _unknown("IP-Adapter", name, [a.name for a in entries])

    def image_encoder_for(self, adapter: IPAdapterEntry) -> pathlib.Path:
        """The CLIP image encoder ``adapter`` runs with: its own, or the first in image_encoder_dirs that fits."""
        if adapter.image_encoder is not None:
            return adapter.image_encoder
        needed = ip_adapter_image_input(adapter.path)
        found = [folder / name for folder in self.image_encoder_dirs for name in _scan(folder)]
        for path in found:
            if needed is None or image_encoder_output(path).get(needed[0]) == needed[1]:
                return path
        where = ("none of " + ", ".join(p.name for p in found[:4]) + " fits it" if found else
                 "none is configured")
        raise EngineInputError(
            f"IP-Adapter {adapter.name!r} needs a CLIP image encoder and {where}: put the encoder it was trained "
            f"with (e.g. CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors) in a folder listed in [ip_adapters] "
            f"image_encoder_dirs (ComfyUI: models/clip_vision/), or set image_encoder for it in models.toml.")

    def _resolve_file(self, folders, name, what, available) -> pathlib.Path:
        _check_name(name, what)
        if not folders:
            raise EngineInputError(f"no {what} folder is configured in models.toml, so {name!r} cannot be used.")
        for folder in folders:
            path = _safe_path(folder, name, what)
            if path is not None:
                return path
        raise _unknown(what, name, available())


# -- loading the toml ------------------------------------------------------------------------------


def load_registry(path) -> ModelRegistry:
    """Read ``models.toml``; a ``ValueError`` that names the problem if it is unusable."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: the model registry file does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the model registry ({error}).") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error}).") from None
    root = path.resolve().parent
    where = path.name

    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(sorted(_TOP_KEYS))} ([[base]] and [[controlnet]] are arrays).")

    bases = [_read_base(root, where, i, item) for i, item in enumerate(_table_list(data, "base", where))]
    controlnets = [_read_controlnet(root, where, i, item)
                   for i, item in enumerate(_table_list(data, "controlnet", where))]
    lora_dirs = _dirs(root, where, data, "loras")
    ip_dirs, encoder_dirs, ip_adapters = _read_ip_adapters(root, where, data.get("ip_adapters", {}))
    checkpoint_dirs, controlnet_dirs = [], []

    if "comfyui_root" in data:
        comfy = _folder(root, where, "comfyui_root", data["comfyui_root"])
        present = {key: comfy / sub for key, sub in _COMFY_FOLDERS.items() if (comfy / sub).is_dir()}
        if not present:
            raise ValueError(f"{where}: comfyui_root {comfy} holds none of "
                             f"{', '.join(_COMFY_FOLDERS.values())}/ — point it at ComfyUI's models folder.")
        checkpoint_dirs += [present["checkpoints"]] if "checkpoints" in present else []
        controlnet_dirs += [present["controlnet"]] if "controlnet" in present else []
        lora_dirs += [present["loras"]] if "loras" in present else []
        ip_dirs += [present["ipadapter"]] if "ipadapter" in present else []
        encoder_dirs += [present["clip_vision"]] if "clip_vision" in present else []

    for kind, items in (("base", bases), ("controlnet", controlnets)):
        seen = set()
        for item in items:
            if item.name in seen:
                raise ValueError(f"{where}: two [[{kind}]] entries are named {item.name!r}.")
            seen.add(item.name)
    configs = _read_single_file_configs(root, where, data.get("single_file_configs", {}))
    bases = [b if b.config or not b.single_file else dataclasses.replace(b, config=configs.get(b.family))
             for b in bases]
    registry = ModelRegistry(root, bases, controlnets, lora_dirs, ip_dirs, checkpoint_dirs, controlnet_dirs,
                             ip_adapters, encoder_dirs, configs)
    for base in bases:
        if base.preview.lora:
            try:
                registry.resolve_lora(base.preview.lora)
            except EngineInputError as error:
                raise ValueError(f"{where}: base {base.name!r} preview_lora: {error}") from None
    return registry


def _table_list(data, key, where) -> list[dict]:
    items = data.get(key, [])
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{where}: '{key}' must be written as [[{key}]] tables.")
    return items


def _string(where, section, item, key, required=True, default=None) -> str | None:
    value = item.get(key, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {section} needs a text '{key}'.")
    return value


def _weights_path(root, where, section, value, what) -> pathlib.Path:
    path = pathlib.Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{where}: {section} path {value!r} is a pickle file ({path.suffix}), which can run code "
                         f"when loaded: convert it to .safetensors (or use the diffusers folder).")
    if not path.exists():
        raise ValueError(f"{where}: {section} path {path} does not exist.")
    if path.is_file() and path.suffix.lower() != WEIGHTS_SUFFIX:
        raise ValueError(f"{where}: {section} path {value!r} must be a diffusers folder or a .safetensors file.")
    if path.is_dir() and what == "base" and not (path / "model_index.json").is_file():
        raise ValueError(f"{where}: {section} folder {path} has no model_index.json; "
                         f"it is not a diffusers pipeline folder.")
    if path.is_dir() and what in ("controlnet", "image_encoder") and not (path / "config.json").is_file():
        raise ValueError(f"{where}: {section} folder {path} has no config.json; it is not a diffusers model folder.")
    return path


def _read_base(root, where, index, item) -> BaseModel:
    section = f"[[base]] #{index + 1}"
    extra = set(item) - _BASE_KEYS
    if extra:
        raise ValueError(f"{where}: {section} has unknown key(s) {', '.join(sorted(extra))}.")
    name = _string(where, section, item, "name")
    _config_name(where, section, name)
    family = _string(where, section, item, "family", default="sd15")
    if family not in FAMILIES:
        raise ValueError(f"{where}: {section} family must be one of {', '.join(FAMILIES)}, not {family!r}.")
    path = _weights_path(root, where, section, _string(where, section, item, "path"), "base")
    config = _string(where, section, item, "config", required=False)
    config = _folder(root, where, f"{section} config", config) if config else None
    return BaseModel(name, path, family, config, _read_preview(root, where, section, item))


def _read_preview(root, where, section, item) -> Preview:
    lora = _string(where, section, item, "preview_lora", required=False)
    weight = item.get("preview_lora_weight", 1.0)
    if not _is_number(weight) or not -4 <= weight <= 4:
        raise ValueError(f"{where}: {section} preview_lora_weight must be a number from -4 to 4.")
    scheduler = _string(where, section, item, "preview_scheduler", required=False)
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"{where}: {section} preview_scheduler must be one of {', '.join(SCHEDULERS)}, "
                         f"not {scheduler!r}.")
    steps = item.get("preview_steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 150):
        raise ValueError(f"{where}: {section} preview_steps must be a whole number from 1 to 150.")
    guidance = item.get("preview_guidance")
    if guidance is not None and (not _is_number(guidance) or not 0 <= guidance <= 30):
        raise ValueError(f"{where}: {section} preview_guidance must be a number from 0 to 30.")
    vae = _string(where, section, item, "preview_vae", required=False)
    if vae is not None:
        vae = _folder(root, where, f"{section} preview_vae", vae)
        if not (vae / "config.json").is_file():
            raise ValueError(f"{where}: {section} preview_vae folder {vae} has no config.json; it must be a "
                             f"diffusers AutoencoderTiny folder (e.g. madebyollin/taesd).")
    return Preview(lora, float(weight), scheduler, steps, None if guidance is None else float(guidance), vae)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _read_single_file_configs(root, where, section) -> dict[str, pathlib.Path]:
    """[single_file_configs]: family → a diffusers folder (model_index.json + configs) for checkpoints
    without their own ``config``, ComfyUI's included, so they load offline."""
    if not isinstance(section, dict) or set(section) - set(FAMILIES):
        raise ValueError(f"{where}: [single_file_configs] maps {' and '.join(FAMILIES)} to diffusers folders.")
    configs = {}
    for family, value in section.items():
        folder = _folder(root, where, f"single_file_configs.{family}", value)
        if not (folder / "model_index.json").is_file():
            raise ValueError(f"{where}: single_file_configs.{family} folder {folder} has no model_index.json; "
                             f"use a diffusers folder of that family (its weights are not needed).")
        configs[family] = folder
    return configs


def _read_ip_adapters(root, where, section) -> tuple[list[pathlib.Path], list[pathlib.Path], list[IPAdapterEntry]]:
    """[ip_adapters]: dirs, image_encoder_dirs, and [ip_adapters.NAME] tables naming one adapter each."""
    if not isinstance(section, dict):
        raise ValueError(f"{where}: [ip_adapters] must be a table with dirs = [...].")
    folders = {key: section.get(key, []) for key in ("dirs", "image_encoder_dirs")}
    entries = []
    for name, item in section.items():
        if name in folders:
            continue
        table = f"[ip_adapters.{name}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: [ip_adapters] has unknown key {name!r}; it takes dirs, image_encoder_dirs "
                             f"and [ip_adapters.NAME] tables with file = ... and image_encoder = ....")
        extra = set(item) - _IP_ADAPTER_KEYS
        if extra:
            raise ValueError(f"{where}: {table} has unknown key(s) {', '.join(sorted(extra))}.")
        _config_name(where, table, name)
        path = _weights_path(root, where, table, _string(where, table, item, "file"), "file")
        if not path.is_file():
            raise ValueError(f"{where}: {table} file must be one .safetensors file.")
        encoder = _string(where, table, item, "image_encoder", required=False)
        if encoder is not None:
            encoder = _weights_path(root, where, f"{table} image_encoder", encoder, "image_encoder")
        family = _string(where, table, item, "family", default=guess_ip_adapter_family(path))
        if family not in FAMILIES:
            raise ValueError(f"{where}: {table} family must be one of {', '.join(FAMILIES)}, not {family!r}.")
        entries.append(IPAdapterEntry(name, path, family, encoder))
    return (_folder_list(root, where, "ip_adapters.dirs", folders["dirs"]),
            _folder_list(root, where, "ip_adapters.image_encoder_dirs", folders["image_encoder_dirs"]), entries)


def _read_controlnet(root, where, index, item) -> ControlNetEntry:
    section = f"[[controlnet]] #{index + 1}"
    extra = set(item) - _CONTROLNET_KEYS
    if extra:
        raise ValueError(f"{where}: {section} has unknown key(s) {', '.join(sorted(extra))}.")
    name = _string(where, section, item, "name")
    _config_name(where, section, name)
    control = _string(where, section, item, "control")
    if control not in CONTROLS:
        raise ValueError(f"{where}: {section} control must be one of {', '.join(CONTROLS)}, not {control!r}.")
    family = _string(where, section, item, "family", default="sdxl" if control == "union" else "sd15")
    if family not in FAMILIES:
        raise ValueError(f"{where}: {section} family must be one of {', '.join(FAMILIES)}, not {family!r}.")
    path = _weights_path(root, where, section, _string(where, section, item, "path"), "controlnet")
    config = _string(where, section, item, "config", required=False)
    config = _folder(root, where, f"{section} config", config) if config else None
    return ControlNetEntry(name, path, control, family, config)


def _config_name(where, section, name):
    if name != name.strip() or any(c in name for c in "\\\0") or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"{where}: {section} name {name!r} must be a plain name.")


def _folder(root, where, key, value) -> pathlib.Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: '{key}' must be a folder path.")
    path = pathlib.Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_dir():
        raise ValueError(f"{where}: the folder {path} ('{key}') does not exist.")
    return path.resolve()


def _dirs(root, where, data, key) -> list[pathlib.Path]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise ValueError(f"{where}: [{key}] must be a table with dirs = [...].")
    extra = set(section) - {"dirs"}
    if extra:
        raise ValueError(f"{where}: [{key}] has unknown key(s) {', '.join(sorted(extra))}; only 'dirs'.")
    return _folder_list(root, where, f"{key}.dirs", section.get("dirs", []))


def _folder_list(root, where, key, dirs) -> list[pathlib.Path]:
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list):
        raise ValueError(f"{where}: {key} must be a list of folders.")
    return [_folder(root, where, key, d) for d in dirs]


# -- safe name resolution --------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(name, what) -> None:
    """Refuse names that are not a relative path inside a folder, or that are not safetensors."""
    if not isinstance(name, str) or not name.strip():
        raise EngineInputError(f"the {what} name is empty.")
    if "\\" in name or "\0" in name or name.startswith(("/", "~")) or _DRIVE.match(name):
        raise EngineInputError(f"{what} {name!r} must be a name as the server lists it (a file name inside its "
                               f"folder), not a path on your machine.")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise EngineInputError(f"{what} {name!r} may not use '..', '.' or empty path parts: "
                               f"give the name as the server lists it.")


def _names_a_file(name: str) -> bool:
    """Whether a name is meant as a file in a folder (weights or a pickle), not a name from models.toml."""
    return name.lower().endswith((WEIGHTS_SUFFIX,) + PICKLE_SUFFIXES)


def _check_suffix(name, what) -> None:
    lower = name.lower()
    if lower.endswith(PICKLE_SUFFIXES):
        raise EngineInputError(f"{what} {name!r} is a pickle file ({pathlib.PurePosixPath(name).suffix}), which can "
                               f"run code when loaded; the server only loads .safetensors: convert it to "
                               f"safetensors and use that file.")
    if not lower.endswith(WEIGHTS_SUFFIX):
        raise EngineInputError(f"{what} {name!r} is not a .safetensors file; the server only loads .safetensors.")


def _safe_path(folder: pathlib.Path, name: str, what: str) -> pathlib.Path | None:
    """The file ``name`` inside ``folder`` (symlinks allowed only if they stay inside), or None."""
    _check_name(name, what)
    _check_suffix(name, what)
    root = folder.resolve()
    candidate = root / name
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise EngineInputError(f"{what} {name!r} cannot be opened (a broken link?).") from None
    if not real.is_relative_to(root):
        if candidate.exists() or candidate.is_symlink():
            raise EngineInputError(f"{what} {name!r} is a link that points outside its folder: refused.")
        return None
    if real.suffix.lower() != WEIGHTS_SUFFIX:  # a link named .safetensors pointing at a pickle
        _check_suffix(real.name, what)
    return real if real.is_file() else None


def _scan(folder: pathlib.Path) -> list[str]:
    """``.safetensors`` files under ``folder`` as relative posix names (links leaving it skipped)."""
    root = folder.resolve()
    names = []
    try:
        for path in sorted(folder.rglob("*")):
            if len(names) >= MAX_LISTED:
                break
            if path.suffix.lower() != WEIGHTS_SUFFIX:
                continue
            try:
                real = path.resolve()
                if not real.is_relative_to(root) or not real.is_file():
                    continue
            except (OSError, RuntimeError):
                continue
            rel = path.relative_to(folder).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            names.append(rel)
    except OSError:
        pass
    return names


def _scan_all(folders) -> list[str]:
    seen, names = set(), []
    for folder in folders:
        for name in _scan(folder):
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _unknown(what, name, available) -> EngineInputError:
    if available:
        shown = ", ".join(available[:8]) + (f" and {len(available) - 8} more" if len(available) > 8 else "")
        return EngineInputError(f"{what} {name!r} is not on the server; available: {shown}.")
    return EngineInputError(f"{what} {name!r} is not on the server, and none are configured in models.toml.")


# -- guessing what a file is -----------------------------------------------------------------------


def safetensors_shapes(path: pathlib.Path, limit: int = 100_000_000) -> dict[str, list[int]]:
    """Tensor name → shape, from a .safetensors file's header (reads only the header)."""
    with open(path, "rb") as handle:
        size_bytes = handle.read(8)
        if len(size_bytes) != 8:
            return {}
        (size,) = struct.unpack("<Q", size_bytes)
        if size > limit:
            return {}
        header = json.loads(handle.read(size))
    if not isinstance(header, dict):
        return {}
    return {key: list(value.get("shape", [])) for key, value in header.items()
            if key != "__metadata__" and isinstance(value, dict)}


def safetensors_keys(path: pathlib.Path, limit: int = 100_000_000) -> list[str]:
    """The tensor names in a .safetensors file's header (reads only the header)."""
    return list(safetensors_shapes(path, limit))


def _shapes_or_empty(path: pathlib.Path) -> dict[str, list[int]]:
    try:
        return safetensors_shapes(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def guess_ip_adapter_family(path: pathlib.Path) -> str:
    """``sdxl`` or ``sd15`` for an IP-Adapter file: its key/value projections read 2048 (SDXL) or 768 wide text."""
    widths = {shape[1] for key, shape in _shapes_or_empty(path).items()
              if key.startswith("ip_adapter.") and key.endswith("to_k_ip.weight") and len(shape) == 2}
    if widths == {2048}:
        return "sdxl"
    if widths == {768}:
        return "sd15"
    return guess_family(pathlib.Path(path.name), path.name)


def ip_adapter_image_input(path: pathlib.Path) -> tuple[str, int] | None:
    """What an IP-Adapter needs from its image encoder: ("projection_dim" | "hidden_size", width), or None."""
    shapes = _shapes_or_empty(path)
    if len(shapes.get("image_proj.proj.weight", [])) == 2:  # plain IP-Adapter: the projected image embedding
        return "projection_dim", shapes["image_proj.proj.weight"][1]
    if len(shapes.get("image_proj.proj_in.weight", [])) == 2:  # IP-Adapter Plus: the encoder's hidden states
        return "hidden_size", shapes["image_proj.proj_in.weight"][1]
    return None


def image_encoder_output(path: pathlib.Path) -> dict[str, int]:
    """projection_dim and hidden_size of a CLIP vision encoder in transformers layout ({} if it is not one)."""
    if path.is_dir():
        path = path / "model.safetensors"
    shapes = _shapes_or_empty(path)
    projection = shapes.get("visual_projection.weight", [])
    patches = shapes.get("vision_model.embeddings.patch_embedding.weight", [])
    if len(projection) != 2 or len(patches) != 4:
        return {}
    return {"projection_dim": projection[0], "hidden_size": patches[0]}


def image_encoder_config(path: pathlib.Path) -> dict:
    """A ``CLIPVisionConfig`` for a single-file CLIP vision encoder, read off its tensor shapes.

    ComfyUI's clip_vision/ files are transformers state dicts without their config.json; the
    shapes give every size but the number of heads, which is 16 for the ViT-L/H/bigG encoders
    IP-Adapters use (12 for ViT-B, one per 64 channels otherwise).
    """
    shapes = _shapes_or_empty(path)
    prefix = "vision_model.encoder.layers."
    layers = {int(key[len(prefix):].split(".")[0]) for key in shapes if key.startswith(prefix)}
    output = image_encoder_output(path)
    if not output or not layers:
        raise EngineInputError(f"{path.name} is not a CLIP vision encoder in transformers layout "
                               f"(no vision_model.* / visual_projection tensors).")
    hidden, patch = output["hidden_size"], shapes["vision_model.embeddings.patch_embedding.weight"][2]
    positions = shapes["vision_model.embeddings.position_embedding.weight"][0]
    heads = {768: 12, 1024: 16, 1280: 16, 1664: 16}.get(hidden) or max(1, hidden // 64)
    return {"hidden_size": hidden, "projection_dim": output["projection_dim"], "num_hidden_layers": len(layers),
            "intermediate_size": shapes[f"{prefix}0.mlp.fc1.weight"][0], "num_attention_heads": heads,
            "patch_size": patch, "image_size": round((positions - 1) ** 0.5) * patch, "hidden_act": "gelu"}


def guess_family(path: pathlib.Path, name: str = "") -> str:
    """``sdxl`` or ``sd15`` for a checkpoint or ControlNet file, from its tensor names (or its name)."""
    try:
        if path.is_file():
            keys = safetensors_keys(path)
            if any(k.startswith(("conditioner.embedders.1", "add_embedding.", "control_add_embedding"))
                   or "label_emb" in k for k in keys):
                return "sdxl"
            if keys:
                return "sd15"
    except (OSError, ValueError):
        pass
    lower = (name or path.name).lower()
    return "sdxl" if re.search(r"(sdxl|[^a-z]xl[^a-z]|union|promax)", f"_{lower}_") else "sd15"


def guess_control(name: str) -> str:
    """The control a ControlNet file is for, from its file name (as ComfyUI users name them)."""
    lower = name.lower()
    for key, control in (("union", "union"), ("promax", "union"), ("openpose", "openpose"), ("pose", "openpose"),
                         ("depth", "depth"), ("canny", "canny")):
        if key in lower:
            return control
    return "other"


def _with_scanned(configured: list, folders: list[pathlib.Path], make) -> list:
    """The configured entries, then ``make(name, path)`` for each file the folders hold under a new name."""
    found = list(configured)
    taken = {entry.name for entry in found}
    for folder in folders:
        for name in _scan(folder):
            if name not in taken:
                taken.add(name)
                found.append(make(name, folder / name))
    return found
