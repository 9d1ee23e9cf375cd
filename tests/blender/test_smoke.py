import bpy
import pytest


@pytest.mark.bpy45
def test_scene_has_standin_data(scene):
    assert scene.standin.project.output_dir == "//standin/"
    assert scene.render.resolution_x == 1920 and scene.render.resolution_y == 1080
