"""controlnet_aux stays optional: the backend imports and works without it, and says why a detector can't run."""

import importlib.util
import subprocess
import sys

import pytest

from standin.ai_backend import detectors
from standin.ai_backend.engine import EngineInputError


def test_the_backend_never_imports_controlnet_aux_on_its_own():
    code = ("import sys; import standin.ai_backend.server, standin.ai_backend.engines.sketch, "
            "standin.ai_backend.engines.diffusers_engine, standin.ai_backend.detectors; "
            "print('controlnet_aux' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")


@pytest.mark.skipif(importlib.util.find_spec("controlnet_aux") is not None, reason="controlnet_aux is installed here")
def test_asking_for_a_detector_without_it_explains_what_to_install():
    assert not detectors.available()
    with pytest.raises(EngineInputError, match="optional 'controlnet_aux' package"):
        detectors.detector("openpose", "/nowhere")


def test_unknown_detectors_are_refused():
    with pytest.raises(EngineInputError, match="no detector 'normals'"):
        detectors.detector("normals", "/nowhere")
