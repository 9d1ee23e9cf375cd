# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a project's files go, and how their paths are stored: the bpy edge for folders.

The project output folder (``//standin/`` by default) holds one folder per shot (its passes and
takes) and the animatic. Paths recorded in the .blend are Blender-relative (``//…``) when the file
is saved, so a moved project folder keeps working.
"""

from __future__ import annotations

import pathlib

import bpy

DEFAULT_OUTPUT = "//standin/"


def output_root(scene) -> pathlib.Path | None:
    """The project output folder as an absolute path; None when it is relative to an unsaved .blend
    (each caller says what that means for its own work)."""
    output = scene.standin.project.output_dir or DEFAULT_OUTPUT
    if output.startswith("//") and not bpy.data.filepath:
        return None
    return pathlib.Path(bpy.path.abspath(output))


def blend_relative(path: pathlib.Path) -> str:
    """``//…`` relative to the saved .blend when possible (not across drives), else the absolute path."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(str(path))
        except ValueError:  # another drive
            pass
    return str(path)
