# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest set-up. Blender-side fixtures live in tests/blender/conftest.py."""

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
