# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender app handlers: check shots after a file loads (placeholder until shots land)."""


def register():
    pass


def unregister():
    pass
