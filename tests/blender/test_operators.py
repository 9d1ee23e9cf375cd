"""Operators under bpy.ops.standin.*: usable from scripts, undoable, clear when they can't run."""

import bpy
import pytest

import standin.operators
from standin.addon import shots


def test_every_operator_is_undoable_and_documented():
    assert len(standin.operators.classes) >= 15
    for cls in standin.operators.classes:
        assert cls.bl_idname.startswith("standin."), cls
        options = getattr(cls, "bl_options", set())
        assert "REGISTER" in options or getattr(cls, "not_undoable", ""), cls.bl_idname
        # Operators that edit the scene are undoable; the few that talk to the backend (whose results
        # land later, like Blender's own Render) say why they are not.
        assert "UNDO" in options or len(getattr(cls, "not_undoable", "")) > 20, cls.bl_idname
        assert (cls.__doc__ or "").strip(), f"{cls.bl_idname} has no tooltip"


@pytest.mark.bpy45
@pytest.mark.parametrize(
    "operator, message",
    [
        ("shot_remove", "No shot is selected"),
        ("shot_jump", "No shot is selected"),
        ("shot_reframe", "No shot is selected"),
        ("pose_apply", "Select a stand-in first"),
        ("look_at", "Select a stand-in first"),
        ("character_remove", "No character is selected"),
        ("set_remove", "No set is selected"),
        ("animatic_play", "Build the animatic first"),
        ("generate_cancel", "No generation is running"),
        ("take_activate", "no takes yet"),
    ],
)
def test_poll_says_why_an_operator_cannot_run(scene, operator, message):
    with pytest.raises(RuntimeError, match=message):
        getattr(bpy.ops.standin, operator)()


@pytest.mark.bpy45
def test_jumping_to_a_shot_whose_camera_is_gone_reports_and_keeps_everything(scene):
    shots.add_shot(scene)
    broken = shots.add_shot(scene)
    bpy.data.objects.remove(broken.camera)
    scene.standin.shot_index = 1
    with pytest.raises(RuntimeError, match="camera was deleted") as report:
        bpy.ops.standin.shot_jump()
    assert "Traceback" not in str(report.value)
    assert len(scene.standin.shots) == 2 and broken.status == "BROKEN"
    # The healthy shot still jumps.
    assert bpy.ops.standin.shot_jump(index=0) == {"FINISHED"}
    assert scene.camera == scene.standin.shots[0].camera


@pytest.mark.bpy45
def test_rename_to_a_taken_name_is_refused_with_a_message(scene):
    shots.add_shot(scene)
    shots.add_shot(scene)
    with pytest.raises(RuntimeError, match="already a shot named SQ010_SH0010"):
        bpy.ops.standin.shot_rename(new_name="SQ010_SH0010")
    assert [s.name for s in scene.standin.shots] == ["SQ010_SH0010", "SQ010_SH0020"]
    assert bpy.ops.standin.shot_rename(new_name="SQ010_SH0030") == {"FINISHED"}


@pytest.mark.bpy45
def test_shot_list_actions_from_scripts(scene):
    assert bpy.ops.standin.shot_add(duration=24) == {"FINISHED"}
    assert bpy.ops.standin.shot_add(duration=24) == {"FINISHED"}
    scene.standin.shot_index = 0
    assert bpy.ops.standin.shot_add(placement="AFTER_ACTIVE") == {"FINISHED"}
    assert [s.name for s in scene.standin.shots] == ["SQ010_SH0010", "SQ010_SH0015", "SQ010_SH0020"]
    assert bpy.ops.standin.shot_duplicate() == {"FINISHED"}
    assert bpy.ops.standin.shot_move(direction="UP") == {"FINISHED"}
    assert bpy.ops.standin.shot_remove() == {"FINISHED"}
    assert len(scene.standin.shots) == 3


def _select_only(context, *objects):
    for obj in context.selected_objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    context.view_layer.objects.active = objects[-1] if objects else None


@pytest.mark.bpy45
def test_cast_a_character_then_pose_it_on_a_chair(scene):
    context = bpy.context
    scene.cursor.location = (1.0, 2.0, 0.0)
    assert bpy.ops.standin.character_add(name="Ada", height=1.2) == {"FINISHED"}
    ada = scene.standin.cast["Ada"]
    assert ada.stand_in.name in scene.objects and ada.pass_index == 1
    assert tuple(ada.stand_in.location) == pytest.approx((1.0, 2.0, 0.0))
    with pytest.raises(RuntimeError, match="already a character named Ada"):
        bpy.ops.standin.character_add(name="Ada")
    with pytest.raises(RuntimeError, match="Give the character a name"):
        bpy.ops.standin.character_add(name="  ")

    scene.cursor.location = (1.0, 2.3, 0.0)
    assert bpy.ops.standin.piece_add(kind="chair") == {"FINISHED"}
    chair = context.active_object
    chair.location.z = 0.1  # a chair on a low stage: the seat is at 0.55 m
    _select_only(context, ada.stand_in)
    assert bpy.ops.standin.pose_apply(pose="sit") == {"FINISHED"}
    context.view_layer.update()
    from standin.addon import rig

    hips = rig.joint_positions(ada.stand_in)
    hip_height = (hips["r_hip"].z + hips["l_hip"].z) / 2
    assert 0.55 <= hip_height <= 0.55 + 0.15


@pytest.mark.bpy45
def test_look_at_needs_a_target_and_follows_it(scene):
    context = bpy.context
    bpy.ops.standin.character_add(name="Bo")
    bo = scene.standin.cast["Bo"].stand_in
    _select_only(context, bo)
    with pytest.raises(RuntimeError, match="Shift-click"):
        bpy.ops.standin.look_at()
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    target.location = (3.0, -1.0, 1.6)
    _select_only(context, bo, target)
    assert bpy.ops.standin.look_at() == {"FINISHED"}
    assert any(c.target == target for b in bo.pose.bones for c in b.constraints)
    _select_only(context, bo)
    assert bpy.ops.standin.look_at(clear=True) == {"FINISHED"}
    assert not any(c.target == target for b in bo.pose.bones for c in b.constraints)


@pytest.mark.bpy45
def test_sets_and_pieces_from_operators(scene):
    assert bpy.ops.standin.set_add(name="Street", prompt="wet street at night", seed=7) == {"FINISHED"}
    with pytest.raises(RuntimeError, match="already a set named Street"):
        bpy.ops.standin.set_add(name="Street")
    assert bpy.ops.standin.piece_add(kind="wall", length=5.0, with_door=True, with_window=True) == {"FINISHED"}
    wall = bpy.context.active_object
    street = scene.standin.sets["Street"]
    assert wall.name in street.collection.objects and wall["standin_piece"] == "wall"
    assert wall.dimensions.x == pytest.approx(5.0)
    with pytest.raises(RuntimeError, match="wall"):
        bpy.ops.standin.piece_add(kind="wall", length=0.5, with_door=True)
    assert len(street.collection.objects) == 1  # the refused wall added nothing


@pytest.mark.bpy45
def test_changing_a_characters_colour_recolours_its_stand_in(scene):
    from standin.addon import rig

    bpy.ops.standin.character_add(name="Cy")
    character = scene.standin.cast["Cy"]
    character.color = (0.1, 0.9, 0.2, 1.0)
    body = rig.body_of(character.stand_in)
    assert tuple(body.color) == pytest.approx((0.1, 0.9, 0.2, 1.0))
    assert tuple(body.data.materials[0].diffuse_color) == pytest.approx((0.1, 0.9, 0.2, 1.0))


def test_sidebar_panels_are_in_the_standin_tab():
    import standin.panels

    panels = [c for c in standin.panels.classes if issubclass(c, bpy.types.Panel)]
    assert {p.bl_label for p in panels} >= {"Project", "Cast", "Set", "Shots", "Camera"}
    for panel in panels:
        assert panel.bl_category == "StandIn" and panel.bl_space_type == "VIEW_3D"
        assert hasattr(bpy.types, panel.__name__)


@pytest.mark.bpy45
@pytest.mark.parametrize("name", ["A/B", "_background", ".hidden", 'say "hi"'])
def test_character_names_must_be_usable_as_folder_names(scene, name):
    with pytest.raises(RuntimeError, match="can't name a character"):
        bpy.ops.standin.character_add(name=name)
    assert len(scene.standin.cast) == 0
