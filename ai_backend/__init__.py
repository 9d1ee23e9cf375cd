# SPDX-License-Identifier: GPL-3.0-or-later
"""StandIn's generation backend: HTTP API, durable job store, engines, model registry.

Never imports bpy. ``engine`` is the one interface every engine (image or clip) implements;
``package`` reads and checks the shot packages that Blender (or any tool) sends.
"""
