# SPDX-License-Identifier: GPL-3.0-or-later
"""Engines behind ``ai_backend.engine.Engine``: ``sketch`` (default, CPU) and ``diffusers``."""
