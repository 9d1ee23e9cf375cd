# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate, build and install the StandIn extension with Blender's own tool.

``blender_ext.py`` ships inside the bpy wheel and runs with plain Python. Usage::

    python -m standin.tools.extension validate
    python -m standin.tools.extension build dist/
    python -m standin.tools.extension install dist/standin-0.1.0.zip REPO_DIR
"""

import glob
import pathlib
import subprocess
import sys
import sysconfig

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


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


def validate(source_dir: pathlib.Path = REPO_ROOT) -> str:
    return _run("validate", str(source_dir))


def build(output_dir: pathlib.Path, source_dir: pathlib.Path = REPO_ROOT) -> pathlib.Path:
    """Validate the manifest, then build the zip into ``output_dir``; returns the zip's path."""
    validate(source_dir)
    output_dir = pathlib.Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    _run("build", "--source-dir", str(source_dir), "--output-dir", str(output_dir))
    zips = sorted(output_dir.glob("standin-*.zip"), key=lambda p: p.stat().st_mtime)
    return zips[-1]


def install(zip_path: pathlib.Path, repo_dir: pathlib.Path) -> str:
    """Install the zip into a local extensions repository folder, as Blender does."""
    pathlib.Path(repo_dir).mkdir(parents=True, exist_ok=True)
    return _run("install-files", "--local-dir", str(repo_dir), str(zip_path))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["validate"]:
            print(validate().strip())
        elif argv[:1] == ["build"] and len(argv) == 2:
            print(f"built {build(pathlib.Path(argv[1]))}")
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
