# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate, build and install the StandIn extension with Blender's own tool.

``blender_ext.py`` ships inside the bpy wheel and runs with plain Python. Usage::

    python -m standin.tools.extension validate
    python -m standin.tools.extension wheels          # download the wheels, write the manifest's lists
    python -m standin.tools.extension build dist/     # the above, then one zip per platform
    python -m standin.tools.extension install dist/standin-0.1.0-linux_x64.zip REPO_DIR

The third-party packages the extension needs (besides Blender's own numpy) are pinned in one
place: ``[tool.standin.extension]`` in pyproject.toml. ``build`` resolves that list with pip for
each platform (CPython of Blender's version), downloads the wheels into ``wheels/`` (git-ignored,
a cache: nothing is fetched twice), writes the manifest's ``platforms`` and ``wheels`` lists and
builds with ``--split-platforms``: ``dist/standin-<version>-<platform>.zip``, each zip holding only
its platform's wheels. Blender installs those wheels into its extensions' site-packages when the
extension is enabled.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
WHEELS_DIR = "wheels"
LOCK_FILE = ".resolved.json"  # in the wheel cache: what pip chose, per platform, for which pins

# blender_manifest.toml's generated lines sit between these two comment lines.
BEGIN_MARK = "# BEGIN bundled wheels: written by `make ext` from pyproject.toml [tool.standin.extension]; don't edit."
END_MARK = "# END bundled wheels."


class WheelError(RuntimeError):
    """The wheel list cannot be resolved or is out of date; the message says what to do."""


def blender_ext_script() -> pathlib.Path:
    """Path of ``blender_ext.py`` inside the installed bpy wheel."""
    site = sysconfig.get_paths()["purelib"]
    found = sorted(glob.glob(f"{site}/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise FileNotFoundError("Blender's extension tool was not found: install bpy in this virtualenv (make venv)")
    return pathlib.Path(found[-1])


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(blender_ext_script()), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"blender_ext {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


# --------------------------------------------------------------------------------------------
# The pinned list


@dataclass(frozen=True)
class WheelConfig:
    python: str  # "3.11": Blender's CPython
    platforms: dict[str, str]  # Blender platform ("linux-x64") -> pip platform tag it resolves for
    wheels: tuple[str, ...]  # "name==version", dependencies included
    blender_provides: tuple[str, ...]  # resolved against, never bundled ("numpy==1.26.4")


def _pin(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*", requirement)
    if not match:
        raise WheelError(f"pin {requirement!r} exactly, as name==version")
    return match.group(1), match.group(2)


def canonical_name(name: str) -> str:
    """PEP 503 name: ``OpenEXR`` and ``openexr``, ``opencv_python_headless`` and ``opencv-python-headless`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_config(pyproject: pathlib.Path | None = None) -> WheelConfig:
    pyproject = pyproject or REPO_ROOT / "pyproject.toml"
    with open(pyproject, "rb") as fh:
        table = tomllib.load(fh).get("tool", {}).get("standin", {}).get("extension")
    if not table:
        raise WheelError(f"{pyproject} has no [tool.standin.extension] table")
    config = WheelConfig(
        python=str(table["python"]),
        platforms=dict(table["platforms"]),
        wheels=tuple(table["wheels"]),
        blender_provides=tuple(table.get("blender-provides", ())),
    )
    provided = {canonical_name(_pin(p)[0]) for p in config.blender_provides}
    for requirement in config.wheels:
        if canonical_name(_pin(requirement)[0]) in provided:
            raise WheelError(f"{requirement} ships with Blender: don't bundle it")
    return config


# --------------------------------------------------------------------------------------------
# Wheel file names and platforms (the same mapping Blender's --split-platforms applies)


@dataclass(frozen=True)
class WheelName:
    distribution: str
    version: str
    python_tag: str
    abi_tag: str
    platform_tag: str

    @classmethod
    def parse(cls, filename: str) -> "WheelName":
        parts = pathlib.PurePosixPath(filename).name.removesuffix(".whl").split("-")
        if not filename.endswith(".whl") or len(parts) not in (5, 6):
            raise WheelError(f"not a wheel file name: {filename}")
        return cls(parts[0], parts[1], parts[-3], parts[-2], parts[-1])

    def blender_platforms(self) -> set[str]:
        """Blender platforms this wheel runs on; ``{"any"}`` for a pure-Python wheel."""
        found: set[str] = set()
        for tag in self.platform_tag.split("."):
            if tag == "any":
                found.add("any")
            elif tag.startswith(("manylinux", "musllinux", "linux")):
                found.add("linux-" + _machine(tag))
            elif tag.startswith("win"):
                found.add("windows-" + _machine(tag))
            elif tag.startswith("macosx"):
                machine = tag.rsplit("_", 1)[-1]
                found.update({"macos-x64", "macos-arm64"} if machine == "universal2" else {"macos-" + _machine(tag)})
        return found

    def runs_on(self, platform: str) -> bool:
        return bool(self.blender_platforms() & {"any", platform})


def this_platform() -> str:
    """This machine as a Blender platform: ``linux-x64``, ``macos-arm64``, ``windows-x64``…"""
    import platform

    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    return f"{system}-{_machine(platform.machine().lower())}"


def _machine(tag: str) -> str:
    for suffix, machine in (("x86_64", "x64"), ("amd64", "x64"), ("aarch64", "arm64"), ("arm64", "arm64")):
        if tag.endswith(suffix):
            return machine
    return tag.rsplit("_", 1)[-1]


# --------------------------------------------------------------------------------------------
# Resolving and downloading


def _pip(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--only-binary=:all:"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WheelError(f"pip {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result


def pip_platform_tags(tag: str) -> list[str]:
    """``tag`` and the older tags a system it names also runs: pip expands macOS and manylinux2014
    tags itself but not ``manylinux_2_28``, so glibc 2.28 is given as 2.28, 2.27 … 2.17."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
    if not match:
        return [tag]
    newest, arch = int(match.group(1)), match.group(2)
    return [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 16, -1)] + [f"manylinux2014_{arch}"]


def _target_args(config: WheelConfig, platform: str) -> list[str]:
    args = ["--python-version", config.python, "--implementation", "cp"]
    for tag in pip_platform_tags(config.platforms[platform]):
        args += ["--platform", tag]
    return args


def _lock_key(config: WheelConfig, platform: str) -> dict:
    return {
        "python": config.python,
        "platform_tag": config.platforms[platform],
        "wheels": sorted(config.wheels),
        "blender_provides": sorted(config.blender_provides),
    }


def _resolve_with_pip(config: WheelConfig, platform: str) -> list[str]:
    """File names pip picks for ``platform``; stops if a dependency is missing from the pinned list."""
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "report.json"
        _pip(
            "install", "--dry-run", "--ignore-installed", "--quiet", "--target", str(pathlib.Path(tmp) / "t"),
            "--report", str(report), *_target_args(config, platform), *config.wheels, *config.blender_provides,
        )
        installs = json.loads(report.read_text())["install"]
    pinned = {canonical_name(_pin(r)[0]) for r in config.wheels}
    provided = {canonical_name(_pin(r)[0]) for r in config.blender_provides}
    files, missing = [], []
    for item in installs:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if canonical_name(name) in provided:
            continue
        if canonical_name(name) not in pinned:
            missing.append(f"{name}=={version}")
            continue
        filename = urllib.parse.unquote(item["download_info"]["url"].rsplit("/", 1)[-1])
        if not WheelName.parse(filename).runs_on(platform):
            raise WheelError(f"pip picked {filename} for {platform}: check [tool.standin.extension.platforms]")
        files.append(filename)
    if missing:
        raise WheelError(
            f"on {platform} the pinned wheels also need {', '.join(sorted(missing))}: "
            "add them to [tool.standin.extension] wheels in pyproject.toml"
        )
    return sorted(files)


def wheel_cache() -> pathlib.Path:
    """Where downloaded wheels are kept between builds and clean clones (``$STANDIN_WHEEL_CACHE``,
    else ``$XDG_CACHE_HOME/standin/extension-wheels``): a fresh checkout downloads nothing again."""
    if os.environ.get("STANDIN_WHEEL_CACHE"):
        return pathlib.Path(os.environ["STANDIN_WHEEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "standin" / "extension-wheels"


def _place(source: pathlib.Path, target: pathlib.Path) -> None:
    """Put a cached wheel into the build's wheels/ folder: a hard link when possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def fetch_wheels(
    platform: str, config: WheelConfig | None = None, wheels_dir: pathlib.Path | None = None,
    cache_dir: pathlib.Path | None = None,
) -> list[str]:
    """The wheel file names for ``platform``, placed in ``wheels_dir`` (downloaded into the cache first
    when they are not there yet).

    What pip chose is remembered in the cache's ``.resolved.json`` with the pins it was chosen for:
    an unchanged list with its files cached needs no network at all.
    """
    config = config or load_config()
    wheels_dir = pathlib.Path(wheels_dir or REPO_ROOT / WHEELS_DIR)
    cache = pathlib.Path(cache_dir or wheel_cache())
    lock_path = cache / LOCK_FILE
    lock = json.loads(lock_path.read_text()) if lock_path.is_file() else {}
    key = _lock_key(config, platform)
    entry = lock.get(platform)
    if entry and entry["key"] == key and all((cache / f).is_file() for f in entry["files"]):
        files = entry["files"]
    else:
        files = _resolve_with_pip(config, platform)
        wanted = {canonical_name(WheelName.parse(f).distribution): f for f in files if not (cache / f).is_file()}
        if wanted:
            cache.mkdir(parents=True, exist_ok=True)
            pins = [r for r in config.wheels if canonical_name(_pin(r)[0]) in wanted]
            _pip("download", "--no-deps", "--quiet", "--dest", str(cache), *_target_args(config, platform), *pins)
            absent = [f for f in wanted.values() if not (cache / f).is_file()]
            if absent:
                raise WheelError(f"pip download did not fetch {', '.join(absent)} for {platform}")
        lock = json.loads(lock_path.read_text()) if lock_path.is_file() else {}
        lock[platform] = {"key": key, "files": files}
        temporary = lock_path.with_name(f".{LOCK_FILE}.{os.getpid()}.part")
        temporary.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, lock_path)
    for name in files:
        if not (wheels_dir / name).is_file():
            _place(cache / name, wheels_dir / name)
    return files


# --------------------------------------------------------------------------------------------
# The manifest's lists


def manifest_lists(files: list[str], platforms: list[str]) -> str:
    """The generated block of blender_manifest.toml, marker lines included."""
    lines = [BEGIN_MARK, "platforms = [" + ", ".join(json.dumps(p) for p in platforms) + "]", "wheels = ["]
    lines += [f'  "./{WHEELS_DIR}/{f}",' for f in sorted(set(files), key=str.lower)]
    lines += ["]", END_MARK]
    return "\n".join(lines)


_BLOCK = re.compile(re.escape(BEGIN_MARK) + r".*?" + re.escape(END_MARK), re.S)


def manifest_with_lists(manifest_text: str, block: str) -> str:
    if not _BLOCK.search(manifest_text):
        raise WheelError(f"{MANIFEST} lacks the line {BEGIN_MARK!r} (and its END line) before its first table")
    return _BLOCK.sub(lambda _: block, manifest_text, count=1)


def one_wheel_per_package(by_platform: dict[str, list[str]]) -> dict[str, list[str]]:
    """Where a wheel chosen for one platform also runs on another (``universal2``), use it there too.

    Blender's split puts every listed wheel that runs on a platform into that platform's zip: pip's
    x86_64 fonttools beside the universal2 one the arm64 Mac needs would put both in the Intel zip.
    """
    chosen = {f for files in by_platform.values() for f in files}

    def reach(filename: str) -> tuple[bool, int]:
        platforms = WheelName.parse(filename).blender_platforms()
        return "any" in platforms, len(platforms)

    result = {}
    for platform, files in by_platform.items():
        picked = {}
        for filename in files:
            package = canonical_name(WheelName.parse(filename).distribution)
            covering = [
                f for f in chosen
                if canonical_name(WheelName.parse(f).distribution) == package and WheelName.parse(f).runs_on(platform)
            ]
            picked[package] = max(covering, key=lambda f: (reach(f), f))
        result[platform] = sorted(picked.values(), key=str.lower)
    return result


def update_manifest(source_dir: pathlib.Path = REPO_ROOT, *, write: bool = True) -> dict[str, list[str]]:
    """Fetch every platform's wheels and put the lists into the manifest; returns the files by platform.

    With ``write=False`` a manifest that differs raises instead (for tests: the tree stays as it is).
    """
    source_dir = pathlib.Path(source_dir)
    config = load_config(source_dir / "pyproject.toml")
    fetched = {p: fetch_wheels(p, config, source_dir / WHEELS_DIR) for p in config.platforms}
    by_platform = one_wheel_per_package(fetched)
    path = source_dir / MANIFEST
    text = path.read_text()
    block = manifest_lists([f for files in by_platform.values() for f in files], sorted(config.platforms))
    new_text = manifest_with_lists(text, block)
    if new_text != text:
        if not write:
            raise WheelError(f"{MANIFEST}'s platforms/wheels lists are out of date: run `make ext`")
        path.write_text(new_text)
    return by_platform


# --------------------------------------------------------------------------------------------
# Blender's tool


def validate(source_dir: pathlib.Path = REPO_ROOT) -> str:
    return _run("validate", str(source_dir))


def build(
    output_dir: pathlib.Path, source_dir: pathlib.Path = REPO_ROOT, *, write_manifest: bool = True
) -> dict[str, pathlib.Path]:
    """Fetch the wheels, write the manifest's lists, validate, build one zip per platform into ``output_dir``.

    Returns ``{"linux-x64": .../standin-0.1.0-linux_x64.zip, ...}``.
    """
    source_dir = pathlib.Path(source_dir)
    by_platform = update_manifest(source_dir, write=write_manifest)
    validate(source_dir)
    with open(source_dir / MANIFEST, "rb") as fh:
        manifest = tomllib.load(fh)
    output_dir = pathlib.Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{manifest['id']}-{manifest['version']}"
    for stale in [output_dir / f"{stem}.zip", *(output_dir / f"{stem}-{p.replace('-', '_')}.zip" for p in by_platform)]:
        stale.unlink(missing_ok=True)
    _run("build", "--split-platforms", "--source-dir", str(source_dir), "--output-dir", str(output_dir))
    zips = {p: output_dir / f"{stem}-{p.replace('-', '_')}.zip" for p in by_platform}
    absent = [str(z) for z in zips.values() if not z.is_file()]
    if absent:
        raise RuntimeError(f"blender_ext build did not write {', '.join(absent)}")
    return zips


def install(zip_path: pathlib.Path, repo_dir: pathlib.Path) -> str:
    """Install the zip into a local extensions repository folder, as Blender does."""
    pathlib.Path(repo_dir).mkdir(parents=True, exist_ok=True)
    return _run("install-files", "--local-dir", str(repo_dir), str(zip_path))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["validate"]:
            print(validate().strip())
        elif argv[:1] == ["wheels"] and len(argv) == 1:
            for platform, files in update_manifest().items():
                print(f"{platform}: {', '.join(files)}")
        elif argv[:1] == ["build"] and len(argv) == 2:
            for platform, zip_path in build(pathlib.Path(argv[1])).items():
                print(f"built {zip_path} ({zip_path.stat().st_size / 2**20:.1f} MiB) for {platform}")
        elif argv[:1] == ["install"] and len(argv) == 3:
            print(install(pathlib.Path(argv[1]), pathlib.Path(argv[2])).strip())
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except (RuntimeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
