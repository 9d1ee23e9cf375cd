"""The extension validates, builds one zip per platform with Blender's own tool, each holding that
platform's wheels; the zip installs like Blender does, enables, and imports its third-party packages
from the bundled wheels (not from this virtualenv)."""

import ast
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import tomllib
import zipfile

import bpy
import pytest

import standin
from standin.tools import extension
from standin.tools.extension import WheelName, canonical_name

HERE = extension.this_platform()

# Runs in a fresh Blender process (python -I, its own user extensions folder). Blender's own Python
# has none of the bundled packages, this virtualenv has them all: hide this virtualenv's copies, so
# that they can only come from the wheels Blender installs for the extension.
ENABLE_SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.machinery, json, os, site, sys, tempfile

    BUNDLED = {"cv2", "OpenEXR", "Imath", "fpdf", "PIL", "fontTools", "defusedxml", "opentimelineio",
               "opentimelineview", "otio_cmx3600_adapter"}
    VENV_SITE = set(site.getsitepackages())

    class OutsideThisVirtualenv:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if path is not None or fullname not in BUNDLED:
                return None
            spec = importlib.machinery.PathFinder.find_spec(
                fullname, [p for p in sys.path if p not in VENV_SITE])
            if spec is None:
                raise ModuleNotFoundError(f"No module named {fullname!r} outside this virtualenv", name=fullname)
            return spec

    sys.meta_path.insert(0, OutsideThisVirtualenv)

    import bpy
    import addon_utils

    repo_dir = sys.argv[-1]
    prefs = bpy.context.preferences
    repo = prefs.extensions.repos.new(
        name="StandIn Test", module="standin_test", custom_directory=repo_dir, source="USER"
    )
    module = "bl_ext.standin_test.standin"
    report = {"blender": bpy.app.version_string}
    mod = addon_utils.enable(module, default_set=True, handle_error=None)
    report["file"] = getattr(mod, "__file__", None)
    report["enabled"] = hasattr(bpy.types.Scene, "standin") and hasattr(bpy.types, "STANDIN_OT_shot_add")
    scene = bpy.context.scene
    scene.standin.project.aspect = "2.39"
    report["resolution"] = [scene.render.resolution_x, scene.render.resolution_y]

    # The wheels Blender installed for the extension, and what they import.
    report["site"] = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                                  "python{}.{}".format(*sys.version_info[:2]), "site-packages")
    names = ["cv2", "OpenEXR", "fpdf", "PIL", "fontTools", "defusedxml", "opentimelineio",
             "otio_cmx3600_adapter", "numpy"]
    report["modules"] = {name: importlib.import_module(name).__file__ for name in names}
    import cv2, numpy as np, OpenEXR, fpdf, opentimelineio as otio
    from PIL import Image
    edges = cv2.Canny(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)), 10, 20)
    report["cv2_png"] = bool(cv2.imencode(".png", edges)[0])
    depth = np.linspace(0.0, 9.0, 16 * 8, dtype=np.float32).reshape(8, 16)
    exr = os.path.join(tempfile.mkdtemp(), "depth.exr")
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Z": depth}) as f:
        f.write(exr)
    with OpenEXR.File(exr) as f:
        report["exr_roundtrip"] = bool(np.array_equal(f.channels()["Z"].pixels, depth))
    pdf = fpdf.FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="SQ010_SH0010")
    report["pdf"] = bytes(pdf.output()[:5]).decode()
    report["png_from_pil"] = Image.new("RGB", (4, 4)).size == (4, 4)
    report["otio_adapters"] = sorted(otio.adapters.available_adapter_names())
    for name in ("pass_images", "openpose", "shot_package", "render_passes"):
        importlib.import_module(module + ".addon." + name)
    report["addon_cv2"] = sys.modules[module + ".addon.pass_images"].cv2.__file__

    addon_utils.disable(module, default_set=True)
    report["disabled"] = not hasattr(bpy.types.Scene, "standin")
    addon_utils.enable(module, default_set=True, handle_error=None)
    report["re_enabled"] = hasattr(bpy.types.Scene, "standin")
    addon_utils.disable(module, default_set=True)
    prefs.extensions.repos.remove(repo)
    print("REPORT" + json.dumps(report))
    """
)


def _wheels_in(zip_path: pathlib.Path) -> list[str]:
    return sorted(n for n in zipfile.ZipFile(zip_path).namelist() if n.endswith(".whl"))


def _zip_manifest(zip_path: pathlib.Path) -> dict:
    return tomllib.loads(zipfile.ZipFile(zip_path).read("blender_manifest.toml").decode())


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """The extension built once for every platform (wheels come from the wheels/ cache after the first run)."""
    return extension.build(tmp_path_factory.mktemp("dist"), write_manifest=False)


@pytest.mark.bpy45
def test_manifest_passes_blenders_validator():
    assert "Success" in extension.validate()


def test_manifest_lists_exactly_the_pinned_wheels():
    """blender_manifest.toml's lists (written by `make ext`) match pyproject.toml's pins, offline."""
    config = extension.load_config()
    with open(extension.REPO_ROOT / extension.MANIFEST, "rb") as fh:
        manifest = tomllib.load(fh)
    assert sorted(manifest["platforms"]) == sorted(config.platforms)
    pins = {canonical_name(n): v for n, v in (extension._pin(r) for r in config.wheels)}
    wheels = [WheelName.parse(w) for w in manifest["wheels"]]
    assert all(w.startswith("./wheels/") for w in manifest["wheels"])
    for platform in config.platforms:
        here = [w for w in wheels if w.runs_on(platform)]
        assert sorted(canonical_name(w.distribution) for w in here) == sorted(pins), platform
        assert all(w.version == pins[canonical_name(w.distribution)] for w in here), platform
    assert not any(canonical_name(w.distribution) == "numpy" for w in wheels)  # Blender's own


def test_wheel_platforms_agree_with_blenders_split():
    """tools/extension.py decides which platform a wheel is for as blender_ext.py --split-platforms does."""
    spec = importlib.util.spec_from_file_location("blender_ext", extension.blender_ext_script())
    blender_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blender_ext)
    with open(extension.REPO_ROOT / extension.MANIFEST, "rb") as fh:
        names = [w.rsplit("/", 1)[-1] for w in tomllib.load(fh)["wheels"]]
    names += ["a-1-cp311-cp311-macosx_10_9_universal2.whl", "b-1-cp311-cp311-manylinux_2_28_aarch64.whl",
              "c-1-cp311-cp311-win_arm64.whl", "d-1-py3-none-any.whl", "e-1-cp37-abi3-musllinux_1_2_x86_64.whl"]
    for platform in ("linux-x64", "linux-arm64", "windows-x64", "windows-arm64", "macos-x64", "macos-arm64"):
        ours = [n for n in names if WheelName.parse(n).runs_on(platform)]
        assert ours == blender_ext.paths_filter_wheels_by_platform(names, platform), platform


def test_one_wheel_per_package_prefers_the_wheel_both_macs_share():
    arm = ["fonttools-4.68.0-cp311-cp311-macosx_10_9_universal2.whl", "fpdf2-2.8.9-py3-none-any.whl"]
    intel = ["fonttools-4.68.0-cp311-cp311-macosx_10_9_x86_64.whl", "fpdf2-2.8.9-py3-none-any.whl"]
    linux = ["fonttools-4.68.0-cp311-cp311-manylinux_2_17_x86_64.whl", "fpdf2-2.8.9-py3-none-any.whl"]
    result = extension.one_wheel_per_package({"macos-arm64": arm, "macos-x64": intel, "linux-x64": linux})
    assert result == {"macos-arm64": arm, "macos-x64": arm, "linux-x64": linux}
    assert extension.pip_platform_tags("manylinux_2_19_x86_64") == [
        "manylinux_2_19_x86_64", "manylinux_2_18_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert extension.pip_platform_tags("win_amd64") == ["win_amd64"]


def test_each_zip_holds_only_its_platforms_wheels(zips):
    config = extension.load_config()
    assert sorted(zips) == sorted(config.platforms)
    for platform, zip_path in zips.items():
        assert zip_path.name == f"standin-0.1.0-{platform.replace('-', '_')}.zip"
        wheels = _wheels_in(zip_path)
        assert len(wheels) == len(config.wheels), (platform, wheels)
        assert all(WheelName.parse(w).runs_on(platform) for w in wheels), (platform, wheels)
        generated = _zip_manifest(zip_path)["build"]["generated"]
        assert generated["platforms"] == [platform]
        assert sorted(w.removeprefix("./") for w in generated["wheels"]) == wheels
        names = zipfile.ZipFile(zip_path).namelist()
        for excluded in ("ai_backend/", "tests/", "bench/", "tools/"):
            assert not any(n.startswith(excluded) for n in names), excluded
        assert not [n for n in names if any(part.startswith(".") for part in n.split("/"))]  # .venv, .hypothesis…
    linux = _wheels_in(zips["linux-x64"])
    assert any("opencv_python_headless" in w and "manylinux" in w for w in linux)
    assert not any(tag in w for w in linux for tag in ("win_", "macosx_"))


def test_every_third_party_import_is_bundled(zips):
    """Each module the extension's code imports is stdlib, Blender's own (numpy included) or in a wheel."""
    archive = zipfile.ZipFile(zips[HERE] if HERE in zips else zips["linux-x64"])
    bundled = set()
    for wheel in _wheels_in(archive.filename):
        with zipfile.ZipFile(archive.open(wheel)) as inner:
            for name in inner.namelist():
                top = name.split("/")[0]
                if not top.endswith((".dist-info", ".data")):
                    bundled.add(top.split(".")[0])
    blender_dir = pathlib.Path(bpy.utils.resource_path("LOCAL"))  # .../bpy/5.0: scripts/modules, etc.
    missing = {}
    for name in archive.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(archive.read(name))):
            roots = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for root in (r.split(".")[0] for r in roots):
                if root in sys.stdlib_module_names or root in bundled or root == "numpy":
                    continue
                module = sys.modules.get(root)
                origin = getattr(module, "__file__", None) if module else getattr(
                    importlib.util.find_spec(root), "origin", "?")
                if origin is None or pathlib.Path(origin).is_relative_to(blender_dir):
                    continue  # Blender's: bpy, mathutils, bpy_extras…
                missing.setdefault(root, []).append(name)
    assert not missing, f"imported but not bundled (add to [tool.standin.extension] wheels): {missing}"


@pytest.mark.bpy45
def test_zip_installs_enables_and_imports_its_wheels(zips, tmp_path):
    if HERE not in zips:
        pytest.skip(f"no zip for {HERE}")
    repo_dir = tmp_path / "user_repo"
    extension.install(zips[HERE], repo_dir)
    assert (repo_dir / "standin" / "blender_manifest.toml").is_file()

    script = tmp_path / "enable.py"
    script.write_text(ENABLE_SCRIPT)
    # -I: no PYTHONPATH, no user site; Blender's user extensions (and the wheels' site-packages) in tmp.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BLENDER_USER"))}
    env["BLENDER_USER_EXTENSIONS"] = str(tmp_path / "user_extensions")
    env["BLENDER_USER_CONFIG"] = str(tmp_path / "user_config")
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(repo_dir)], capture_output=True, text=True, timeout=600, env=env
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT")]
    assert lines, result.stdout + result.stderr
    report = json.loads(lines[-1][len("REPORT"):])
    assert report["blender"].startswith("{}.{}".format(*bpy.app.version[:2]))
    assert report["file"].startswith(str(repo_dir))
    assert report["enabled"] and report["disabled"] and report["re_enabled"]
    assert report["resolution"] == [1920, 800]

    site = pathlib.Path(report["site"])
    assert site.is_relative_to(tmp_path / "user_extensions")
    modules = report["modules"]
    numpy_file = pathlib.Path(modules.pop("numpy"))
    assert not numpy_file.is_relative_to(site)  # Blender's numpy, never bundled
    for name, file in modules.items():
        assert pathlib.Path(file).is_relative_to(site), f"{name} came from {file}, not the extension's wheels"
    assert pathlib.Path(report["addon_cv2"]).is_relative_to(site)
    assert report["cv2_png"] and report["exr_roundtrip"] and report["png_from_pil"]
    assert report["pdf"] == "%PDF-"
    assert "cmx_3600" in report["otio_adapters"] and "otio_json" in report["otio_adapters"]


@pytest.mark.bpy45
def test_register_unregister_register_in_one_process():
    standin.unregister()
    assert not hasattr(bpy.types.Scene, "standin")
    assert not hasattr(bpy.types, "STANDIN_PT_shots")
    standin.register()
    assert hasattr(bpy.types.Scene, "standin")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.context.scene.standin.project.output_dir == "//standin/"
