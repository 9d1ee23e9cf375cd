# SPDX-License-Identifier: GPL-3.0-or-later
"""Pose and depth from a user's reference photo, through the optional ``controlnet_aux`` extra.

``controlnet_aux`` loads every detector at import and needs torchvision (and weights of its own),
so it is imported here, lazily, only when a detector is asked for; nothing else in StandIn needs
it. Install with ``pip install 'standin[detectors]'`` on a machine that has torchvision.
"""

from __future__ import annotations

import importlib
import importlib.util

from .engine import EngineInputError

DETECTORS = {"openpose": "OpenposeDetector", "depth": "MidasDetector"}


def available() -> bool:
    """Whether the detectors can be used here (without importing them)."""
    return importlib.util.find_spec("controlnet_aux") is not None


def detector(kind: str, weights: str):
    """A controlnet_aux detector for ``kind`` loaded from a local ``weights`` folder."""
    if kind not in DETECTORS:
        raise EngineInputError(f"no detector {kind!r}; there are {', '.join(DETECTORS)}.")
    try:
        module = importlib.import_module("controlnet_aux")
    except Exception as error:  # ImportError, or torchvision failing inside it
        raise EngineInputError(
            f"detecting {kind} from a photo needs the optional 'controlnet_aux' package (and torchvision), "
            f"which this server cannot import ({type(error).__name__}: {error}). Install standin[detectors] "
            "on a machine with torchvision, or send StandIn's own passes instead."
        ) from None
    return getattr(module, DETECTORS[kind]).from_pretrained(weights)
