# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend test fixtures: ``make_package`` writes a synthetic, valid shot package (see shot_packages)."""

import pytest

from shot_packages import CHARACTERS, character_box, write_package  # noqa: F401  (re-exported for tests)


@pytest.fixture
def make_package(tmp_path):
    """``make_package(frames=3, width=64, height=48, ...)`` → the folder of a fresh shot package."""
    counter = iter(range(1000))

    def make(**kwargs):
        return write_package(tmp_path / f"package{next(counter)}", **kwargs)

    return make
