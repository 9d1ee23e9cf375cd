# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep Blender's own per-render log lines ("Fra:", "Saved: …") out of our command-line output."""

import contextlib
import os
import sys


@contextlib.contextmanager
def blender_output_silenced():
    """Send the process's C-level stdout to /dev/null for the duration (Python's prints are flushed first)."""
    try:
        fd = sys.__stdout__.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)
