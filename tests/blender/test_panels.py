"""The sidebar panels' draw code, run against real scenes.

Headless Blender has no window, so no real UILayout exists here. Each panel's ``draw`` runs with
a recording layout that checks what a real one would reject: every drawn property exists on its
data, every button names a registered operator and sets only properties that operator has, every
list names a registered UIList and real collection/index properties.
"""

import types

import bpy
import pytest

import standin.panels
from standin.addon import demo


class RecordingLayout:
    def __init__(self, log):
        self.log = log
        self.alert = self.enabled = self.active = False

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = grid_flow = split = _child

    def separator(self, **kwargs):
        pass

    def label(self, text="", icon="NONE", **kwargs):
        self.log.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, text="", icon="NONE", depress=False, **kwargs):
        area, name = idname.split(".")
        cls = getattr(bpy.types, f"{area.upper()}_OT_{name}", None)
        assert cls is not None, f"no operator {idname}"
        self.log.append(("operator", idname))
        return _OperatorProperties(cls)

    def template_list(self, list_type, list_id, data, collection, active_data, active_index, **kwargs):
        assert hasattr(bpy.types, list_type), f"no UIList {list_type}"
        assert collection in data.bl_rna.properties and active_index in active_data.bl_rna.properties
        self.log.append(("list", list_type))


class _OperatorProperties:
    def __init__(self, cls):
        object.__setattr__(self, "_names", set(cls.__annotations__))

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"


def _draw_all(context):
    log = []
    for cls in standin.panels.classes:
        if not issubclass(cls, bpy.types.Panel):
            continue
        if hasattr(cls, "poll") and not cls.poll(context):
            continue
        cls.draw(types.SimpleNamespace(layout=RecordingLayout(log)), context)
    data = context.scene.standin
    for list_type, items in (("STANDIN_UL_cast", data.cast), ("STANDIN_UL_sets", data.sets),
                             ("STANDIN_UL_shots", data.shots)):
        for index, item in enumerate(items):
            getattr(bpy.types, list_type).draw_item(
                None, context, RecordingLayout(log), data, item, 0, data, "", index)
    for shot in data.shots:
        for index, take in enumerate(shot.takes):
            bpy.types.STANDIN_UL_takes.draw_item(None, context, RecordingLayout(log), shot, take, 0, shot, "", index)
    return log


@pytest.mark.bpy45
def test_panels_draw_a_fresh_file_and_offer_set_up(factory_scene):
    log = _draw_all(bpy.context)
    assert ("operator", "standin.project_setup") in log
    assert ("label", "This scene has no StandIn project yet.") in log


@pytest.mark.bpy45
def test_panels_draw_the_demo_scene_with_a_broken_shot(scene):
    demo.build_demo(scene)
    data = scene.standin
    data.shot_index = 2
    bpy.data.objects.remove(data.shots[2].camera)
    from standin.addon import handlers

    handlers.check_scene(scene)
    log = _draw_all(bpy.context)
    drawn_lists = {entry[1] for entry in log if entry[0] == "list"}
    assert drawn_lists == {"STANDIN_UL_cast", "STANDIN_UL_sets", "STANDIN_UL_shots", "STANDIN_UL_takes"}
    assert ("operator", "standin.shot_reframe") in log and ("operator", "standin.pose_apply") in log
    assert any(kind == "label" and "camera was" in text for kind, text in log)
    assert ("label", "SQ010_SH0030") in log  # the shot list's rows


@pytest.mark.bpy45
def test_generate_panel_shows_progress_and_the_takes(scene):
    demo.build_demo(scene)
    shot = scene.standin.shots[0]
    scene.standin.shot_index = 0
    for name, seed in (("v001", 5), ("v002", 6)):
        take = shot.takes.add()
        take.name, take.seed, take.profile, take.engine = name, seed, "preview", "sketch"
        take.folder = f"//standin/{shot.name}/{name}/"  # not on disk: the list still draws, no thumbnail
    shot.take_index = 1
    shot.generation, shot.job_step, shot.job_total, shot.job_eta, shot.job_frame = "RUNNING", 3, 12, 75.0, 2
    shot.job_message = "frame 2"
    log = _draw_all(bpy.context)
    assert ("operator", "standin.generate") in log and ("operator", "standin.backend_test") in log
    assert ("label", "seed 6") in log and ("label", "v002") in log
    assert any(kind == "label" and "step 3/12, frame 2, 1:15 left" in text for kind, text in log)
