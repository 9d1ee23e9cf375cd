# SPDX-License-Identifier: GPL-3.0-or-later
"""The model registry: which weights the backend may load, read from ``models.toml``. Pure Python.

A request names models (a base checkpoint, ControlNets, a character's LoRA file); the registry turns
a name into a file **only inside the folders the toml configures**. A name that tries to leave its
folder (``..``, an absolute path, a backslash, a symlink pointing elsewhere) or names a pickle
(``.ckpt``, ``.bin``, ``.pt``: loading one can run arbitrary code) is refused with an
``EngineInputError`` that says what to do. Problems with the toml itself — a syntax error, a
missing folder, an unknown key — are a ``ValueError`` when the server starts.

Format (see ``models.example.toml``)::

    comfyui_root = "/path/to/ComfyUI/models"   # optional: adds checkpoints/, controlnet/, loras/, ipadapter/

    [[base]]
    name = "sd15"                 # what requests and the Blender add-on call it
    path = "models/sd15"          # a diffusers folder or one .safetensors checkpoint
    family = "sd15"               # "sd15" (default) | "sdxl"
    config = "configs/sd15"       # optional, single-file only: a diffusers folder holding its configs

    [[controlnet]]
    name = "depth"
    path = "models/controlnet-depth"   # a diffusers folder or one .safetensors file
    control = "depth"             # "depth" | "openpose" | "canny" | "union"
    family = "sd15"               # optional; "sdxl" for union by default

    [loras]
    dirs = ["loras"]

    [ip_adapters]
    dirs = ["ipadapter"]

Relative paths are relative to the toml's folder.
"""

from __future__ import annotations

import json
import pathlib
import re
import struct
import tomllib
from dataclasses import dataclass

from .engine import EngineInputError

FAMILIES = ("sd15", "sdxl")
CONTROLS = ("depth", "openpose", "canny", "union")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
WEIGHTS_SUFFIX = ".safetensors"
#: listing a folder stops after this many files (a mistaken dirs = ["/"] must not hang the server)
MAX_LISTED = 5000

_TOP_KEYS = {"base", "controlnet", "loras", "ip_adapters", "comfyui_root"}
_BASE_KEYS = {"name", "path", "family", "config"}
_CONTROLNET_KEYS = {"name", "path", "control", "family", "config"}
_COMFY_FOLDERS = {"checkpoints": "checkpoints", "loras": "loras", "controlnet": "controlnet",
                  "ipadapter": "ipadapter"}


class _Weights:
    """What base models and ControlNets share: a path that is a folder or one .safetensors file."""

    path: pathlib.Path

    @property
    def single_file(self) -> bool:
        return self.path.suffix.lower() == WEIGHTS_SUFFIX


@dataclass(frozen=True)
class BaseModel(_Weights):
    name: str
    path: pathlib.Path
    family: str = "sd15"
    #: optional diffusers folder with the configs of a single-file checkpoint (offline loading)
    config: pathlib.Path | None = None

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


class ModelRegistry:
    """Models named in ``models.toml`` plus whatever the configured folders hold (scanned on demand,
    so a LoRA dropped into a folder shows up without restarting the server)."""

    def __init__(self, root: pathlib.Path, bases: list[BaseModel], controlnets: list[ControlNetEntry],
                 lora_dirs: list[pathlib.Path], ip_adapter_dirs: list[pathlib.Path],
                 checkpoint_dirs: list[pathlib.Path] = (), controlnet_dirs: list[pathlib.Path] = ()):
        self.root = pathlib.Path(root)
        self._bases = list(bases)
        self._controlnets = list(controlnets)
        self.lora_dirs = list(lora_dirs)
        self.ip_adapter_dirs = list(ip_adapter_dirs)
        self.checkpoint_dirs = list(checkpoint_dirs)
        self.controlnet_dirs = list(controlnet_dirs)

    # -- what there is -------------------------------------------------------------------------

    @property
    def bases(self) -> list[BaseModel]:
        return _with_scanned(self._bases, self.checkpoint_dirs,
                             lambda name, path: BaseModel(name, path, guess_family(path)))

    @property
    def controlnets(self) -> list[ControlNetEntry]:
        return _with_scanned(self._controlnets, self.controlnet_dirs,
                             lambda name, path: ControlNetEntry(name, path, guess_control(name),
                                                                guess_family(path, name)))

    def loras(self) -> list[str]:
        return _scan_all(self.lora_dirs)

    def ip_adapters(self) -> list[str]:
        return _scan_all(self.ip_adapter_dirs)

    def listing(self) -> dict:
        """Names and kinds for clients (``/v1/models``); never a path on the server's disk."""
        return {
            "bases": [b.public() for b in self.bases],
            "controlnets": [c.public() for c in self.controlnets],
            "loras": [{"name": n} for n in self.loras()],
            "ip_adapters": [{"name": n} for n in self.ip_adapters()],
        }

    def controlnets_for(self, control: str, family: str) -> list[ControlNetEntry]:
        return [c for c in self.controlnets if c.control == control and c.family == family]

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
        for folder in self.checkpoint_dirs:  # a checkpoint named by a path the scan did not list
            path = _safe_path(folder, name, "base model")
            if path is not None:
                return BaseModel(name, path, guess_family(path))
        raise _unknown("base model", name, [b.name for b in bases])

    def resolve_controlnet(self, name: str) -> ControlNetEntry:
        _check_name(name, "ControlNet")
        entries = self.controlnets
        for entry in entries:
            if entry.name == name:
                return entry
        for folder in self.controlnet_dirs:
            path = _safe_path(folder, name, "ControlNet")
            if path is not None:
                return ControlNetEntry(name, path, guess_control(name), guess_family(path, name))
        raise _unknown("ControlNet", name, [c.name for c in entries])

    def resolve_lora(self, name: str) -> pathlib.Path:
        return self._resolve_file(self.lora_dirs, name, "LoRA", self.loras)

    def resolve_ip_adapter(self, name: str) -> pathlib.Path:
        return self._resolve_file(self.ip_adapter_dirs, name, "IP-Adapter", self.ip_adapters)

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
    ip_dirs = _dirs(root, where, data, "ip_adapters")
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

    for kind, items in (("base", bases), ("controlnet", controlnets)):
        seen = set()
        for item in items:
            if item.name in seen:
                raise ValueError(f"{where}: two [[{kind}]] entries are named {item.name!r}.")
            seen.add(item.name)
    return ModelRegistry(root, bases, controlnets, lora_dirs, ip_dirs, checkpoint_dirs, controlnet_dirs)


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
    if path.is_dir() and what == "controlnet" and not (path / "config.json").is_file():
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
    return BaseModel(name, path, family, config)


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
    dirs = section.get("dirs", [])
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list):
        raise ValueError(f"{where}: [{key}] dirs must be a list of folders.")
    return [_folder(root, where, f"{key}.dirs", d) for d in dirs]


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


def safetensors_keys(path: pathlib.Path, limit: int = 100_000_000) -> list[str]:
    """The tensor names in a .safetensors file's header (reads only the header)."""
    with open(path, "rb") as handle:
        size_bytes = handle.read(8)
        if len(size_bytes) != 8:
            return []
        (size,) = struct.unpack("<Q", size_bytes)
        if size > limit:
            return []
        header = json.loads(handle.read(size))
    return [key for key in header if key != "__metadata__"]


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
