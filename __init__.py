# SPDX-License-Identifier: GPL-3.0-or-later
"""StandIn: previs and scene blocking for Blender, with an AI storyboard backend.

The repository root is the Blender extension (see ``blender_manifest.toml``). In the
development virtualenv the same folder is importable as the package ``standin``: the CLI,
the tests and the backend import it without Blender's UI, so nothing here imports ``bpy``
at module level. ``register()``/``unregister()`` pull in the Blender side lazily.
"""

__version__ = "0.1.0"


def register():
    from . import registration

    registration.register()


def unregister():
    from . import registration

    registration.unregister()
