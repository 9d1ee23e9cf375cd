"""The extension validates, builds with Blender's own tool, installs like Blender does, and enables."""

import json
import subprocess
import sys
import textwrap
import zipfile

import bpy
import pytest

import standin
from standin.tools import extension

ENABLE_SCRIPT = textwrap.dedent(
    """
    import json, sys
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
    addon_utils.disable(module, default_set=True)
    report["disabled"] = not hasattr(bpy.types.Scene, "standin")
    addon_utils.enable(module, default_set=True, handle_error=None)
    report["re_enabled"] = hasattr(bpy.types.Scene, "standin")
    addon_utils.disable(module, default_set=True)
    prefs.extensions.repos.remove(repo)
    print("REPORT" + json.dumps(report))
    """
)


@pytest.mark.bpy45
def test_manifest_passes_blenders_validator():
    assert "Success" in extension.validate()


@pytest.mark.bpy45
def test_zip_builds_installs_and_enables(tmp_path):
    zip_path = extension.build(tmp_path / "dist")
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    for excluded in ("ai_backend/", "tests/", "bench/", ".venv", "tools/"):
        assert not any(n.startswith(excluded) for n in names), excluded

    repo_dir = tmp_path / "user_repo"
    extension.install(zip_path, repo_dir)
    assert (repo_dir / "standin" / "blender_manifest.toml").is_file()

    script = tmp_path / "enable.py"
    script.write_text(ENABLE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(repo_dir)], capture_output=True, text=True, timeout=300
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT")]
    assert lines, result.stdout + result.stderr
    report = json.loads(lines[-1][len("REPORT"):])
    assert report["file"].startswith(str(repo_dir))
    assert report["enabled"] and report["disabled"] and report["re_enabled"]
    assert report["resolution"] == [1920, 800]


@pytest.mark.bpy45
def test_register_unregister_register_in_one_process():
    standin.unregister()
    assert not hasattr(bpy.types.Scene, "standin")
    assert not hasattr(bpy.types, "STANDIN_PT_shots")
    standin.register()
    assert hasattr(bpy.types.Scene, "standin")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.context.scene.standin.project.output_dir == "//standin/"
