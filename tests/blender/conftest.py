# SPDX-License-Identifier: GPL-3.0-or-later
"""Headless Blender fixtures: every test starts from factory settings with StandIn registered.

``bpy`` imports once per process, so StandIn is registered once for the session; a test that
unregisters (the enable/disable cycle) leaves it registered again.
"""

import pytest

bpy = pytest.importorskip("bpy")

import standin  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.blender)


@pytest.fixture(scope="session", autouse=True)
def standin_registered():
    if not hasattr(bpy.types.Scene, "standin"):  # another folder's tests may have registered it
        standin.register()
    yield
    standin.unregister()


@pytest.fixture(autouse=True)
def factory_scene(standin_registered):
    """A fresh, empty scene from factory settings; returns it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "standin"):
        standin.register()
    return bpy.context.scene


@pytest.fixture
def scene(factory_scene):
    from standin.addon.properties import ensure_project

    ensure_project(factory_scene)
    return factory_scene
