# SPDX-License-Identifier: GPL-3.0-or-later
"""Blocking in Blender: sets as collections, pieces as sound meshes that rays see (and see through)."""

import math

import bpy
import pytest
from mathutils import Vector

from standin.addon import blocking
from standin.addon.set_pieces import PIECES

pytestmark = pytest.mark.bpy45

WALL_WITH_OPENINGS = {"doors": [(0.5, 0.9, 2.1)], "windows": [(-1.2, 1.0, 1.2, 0.9)]}


def ray_hit(scene, origin, direction, distance=100.0):
    """The object a ray from ``origin`` hits first (None for none), and where and with what normal."""
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    hit, location, normal, _index, obj, _matrix = scene.ray_cast(depsgraph, Vector(origin), Vector(direction), distance=distance)
    return (obj if hit else None), location, normal


def world_bounds(obj):
    corners = [obj.matrix_world @ v.co for v in obj.data.vertices]
    return (
        Vector([min(c[axis] for c in corners) for axis in range(3)]),
        Vector([max(c[axis] for c in corners) for axis in range(3)]),
    )


# --------------------------------------------------------------------------- sets


def test_ensure_set_creates_an_active_set_with_its_collection_under_the_scene(scene):
    kitchen = blocking.ensure_set(scene, "Kitchen", prompt="small kitchen, night", seed=7)
    assert (kitchen.name, kitchen.prompt, kitchen.seed) == ("Kitchen", "small kitchen, night", 7)
    assert kitchen.collection.name == "SET Kitchen"
    assert scene.collection.children.get("SET Kitchen") == kitchen.collection
    assert scene.standin.active_set == kitchen
    assert blocking.active_set_collection(scene) == kitchen.collection


def test_ensure_set_reuses_a_set_by_name_and_makes_it_active(scene):
    first = blocking.ensure_set(scene, "Kitchen", prompt="kitchen", seed=7)
    blocking.ensure_set(scene, "Street")
    assert scene.standin.set_index == 1
    again = blocking.ensure_set(scene, "Kitchen")
    assert again == first and again.seed == 7 and again.prompt == "kitchen"
    assert len(scene.standin.sets) == 2 and scene.standin.set_index == 0
    assert [c.name for c in bpy.data.collections] == ["SET Kitchen", "SET Street"]
    assert blocking.ensure_set(scene, "Kitchen", prompt="kitchen, dawn").prompt == "kitchen, dawn"


def test_ensure_set_relinks_a_collection_unlinked_from_the_scene(scene):
    kitchen = blocking.ensure_set(scene, "Kitchen")
    scene.collection.children.unlink(kitchen.collection)
    assert blocking.active_set_collection(scene) == kitchen.collection
    assert scene.collection.children.get("SET Kitchen") == kitchen.collection


def test_ensure_set_needs_a_name(scene):
    with pytest.raises(ValueError, match="A set needs a name"):
        blocking.ensure_set(scene, "  ")


def test_no_active_set_collection_without_sets(scene):
    assert blocking.active_set_collection(scene) is None


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("kind", list(PIECES))
def test_every_piece_is_a_valid_mesh_of_its_real_size_in_the_active_set(scene, kind):
    kitchen = blocking.ensure_set(scene, "Kitchen")
    obj = blocking.add_piece(scene, kind)
    assert obj.type == "MESH" and obj.name == PIECES[kind].label
    assert obj.data.validate(verbose=False) is False  # nothing to fix
    assert len(obj.data.polygons) > 0
    assert list(obj.users_collection) == [kitchen.collection]
    low, high = world_bounds(obj)
    assert low.z == pytest.approx(0.0, abs=1e-6)
    assert (high.x + low.x, high.y + low.y) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert obj.dimensions.z == pytest.approx(high.z - low.z, abs=1e-6)
    assert obj[blocking.PIECE_KIND_PROP] == kind and blocking.is_set_piece(obj)
    assert obj.pass_index == 0


def test_pieces_share_one_grey_material(scene):
    chair = blocking.add_piece(scene, "chair")
    table = blocking.add_piece(scene, "table")
    assert chair.material_slots[0].material == table.material_slots[0].material
    material = chair.material_slots[0].material
    assert material.name == blocking.PIECE_MATERIAL_NAME
    assert tuple(material.diffuse_color) == pytest.approx(blocking.PIECE_GREY)
    assert sum(m.name.startswith(blocking.PIECE_MATERIAL_NAME) for m in bpy.data.materials) == 1


def test_first_piece_without_a_set_makes_set_1(scene):
    obj = blocking.add_piece(scene, "box")
    assert [s.name for s in scene.standin.sets] == [blocking.DEFAULT_SET_NAME]
    assert obj.users_collection[0] == scene.standin.sets[0].collection
    blocking.add_piece(scene, "box")
    assert len(scene.standin.sets) == 1 and len(scene.standin.sets[0].collection.objects) == 2


def test_pieces_go_to_whichever_set_is_active(scene):
    kitchen = blocking.ensure_set(scene, "Kitchen")
    street = blocking.ensure_set(scene, "Street")
    car = blocking.add_piece(scene, "car")
    scene.standin.set_index = 0
    table = blocking.add_piece(scene, "table")
    assert list(street.collection.objects) == [car] and list(kitchen.collection.objects) == [table]


def test_piece_goes_to_an_explicit_collection(scene):
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    obj = blocking.add_piece(scene, "rock", collection=props, name="Boulder", seed=4)
    assert obj.name == "Boulder" and list(obj.users_collection) == [props]
    assert len(scene.standin.sets) == 0


def test_bad_kind_or_parameter_adds_nothing(scene):
    with pytest.raises(ValueError, match="no set piece called 'spaceship'"):
        blocking.add_piece(scene, "spaceship")
    with pytest.raises(ValueError, match="table's height must be a positive length"):
        blocking.add_piece(scene, "table", height=-0.75)
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0


def test_location_and_rotation_are_applied(scene):
    chair = blocking.add_piece(scene, "chair", location=(2.0, 3.0, 0.0), rotation_z_deg=90.0)
    bpy.context.view_layer.update()
    assert tuple(chair.location) == pytest.approx((2.0, 3.0, 0.0))
    assert chair.rotation_euler.z == pytest.approx(math.radians(90.0))
    low, high = world_bounds(chair)
    # 0.45 wide (x) by 0.5 deep (y) turned a quarter: 0.5 along x, 0.45 along y
    assert tuple(high - low) == pytest.approx((0.5, 0.45, 0.9), abs=1e-5)  # mesh coordinates are float32
    assert tuple(((low + high) / 2).xy) == pytest.approx((2.0, 3.0), abs=1e-5)
    # the back was at +Y; turned 90 degrees anticlockwise it is at -X: a ray from -X hits it high up
    hit, location, _normal = ray_hit(scene, (0.0, 3.0, 0.8), (1.0, 0.0, 0.0))
    assert hit == chair and location.x == pytest.approx(2.0 - 0.25, abs=1e-4)


def test_seat_height_is_in_world_space(scene):
    chair = blocking.add_piece(scene, "chair", location=(0.0, 0.0, 0.5))
    sofa = blocking.add_piece(scene, "sofa", location=(1.0, 0.0, 0.0), rotation_z_deg=45.0)
    bed = blocking.add_piece(scene, "bed")
    table = blocking.add_piece(scene, "table")
    assert chair[blocking.SEAT_HEIGHT_PROP] == pytest.approx(0.45)
    assert blocking.seat_height_of(chair) == pytest.approx(0.95)
    assert blocking.seat_height_of(sofa) == pytest.approx(0.42)
    assert blocking.seat_height_of(bed) == pytest.approx(0.55)
    assert blocking.seat_height_of(table) is None
    stage = bpy.data.objects.new("Stage", None)
    stage.location.z = 0.3
    chair.parent = stage
    assert blocking.seat_height_of(chair) == pytest.approx(1.25)


def test_is_set_piece_tells_pieces_from_other_objects(scene):
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    assert not blocking.is_set_piece(camera) and not blocking.is_set_piece(None)
    assert blocking.seat_height_of(camera) is None


# --------------------------------------------------------------------------- rays through walls


@pytest.mark.parametrize(
    ("label", "x", "z", "sees_through"),
    [
        ("door opening", 0.5, 1.05, True),
        ("beside the door", 1.5, 1.05, False),
        ("above the door", 0.5, 2.4, False),
        ("window opening", -1.2, 1.5, True),
        ("just above the sill", -1.2, 0.92, True),
        ("just below the sill", -1.2, 0.88, False),
    ],
)
def test_rays_pass_through_openings_and_stop_at_the_wall(scene, label, x, z, sees_through):
    wall = blocking.add_piece(scene, "wall", **WALL_WITH_OPENINGS)
    hit, location, normal = ray_hit(scene, (x, -5.0, z), (0.0, 1.0, 0.0))
    if sees_through:
        assert hit is None, label
    else:
        assert hit == wall, label
        assert location.y == pytest.approx(-0.075, abs=1e-4)  # front face of the 15 cm wall
        assert normal.dot(Vector((0.0, -1.0, 0.0))) == pytest.approx(1.0, abs=1e-4)  # outward, toward the ray


def test_rays_through_a_moved_and_turned_wall(scene):
    wall = blocking.add_piece(scene, "wall", location=(3.0, 1.0, 0.0), rotation_z_deg=90.0, **WALL_WITH_OPENINGS)
    # turned 90 degrees the wall runs along Y; its local +X (the door's offset) is world +Y
    hit, _location, _normal = ray_hit(scene, (-5.0, 1.5, 1.05), (1.0, 0.0, 0.0))
    assert hit is None
    hit, location, _normal = ray_hit(scene, (-5.0, 2.5, 1.05), (1.0, 0.0, 0.0))
    assert hit == wall and location.x == pytest.approx(3.0 - 0.075, abs=1e-4)


def test_wall_params_gives_a_wall_rays_pass_through(scene):
    params = blocking.wall_params(5.0, 2.7, with_door=True, with_window=True)
    wall = blocking.add_piece(scene, "wall", **params)
    door_x, window_x = params["doors"][0][0], params["windows"][0][0]
    assert ray_hit(scene, (door_x, -5.0, 1.0), (0.0, 1.0, 0.0))[0] is None
    assert ray_hit(scene, (window_x, -5.0, 1.5), (0.0, 1.0, 0.0))[0] is None
    assert ray_hit(scene, (window_x, -5.0, 0.5), (0.0, 1.0, 0.0))[0] == wall


def test_door_piece_fits_the_wall_opening(scene):
    blocking.add_piece(scene, "wall", doors=[(0.0, 0.9, 2.1)])
    door = blocking.add_piece(scene, "door")
    hit, _location, _normal = ray_hit(scene, (0.0, -5.0, 1.5), (0.0, 1.0, 0.0))
    assert hit == door
    low, high = world_bounds(door)
    assert (high.x - low.x, high.y - low.y, high.z - low.z) <= (0.9, 0.15, 2.1)


# --------------------------------------------------------------------------- saved files


def test_pieces_and_sets_survive_save_and_reload(scene, tmp_path):
    blocking.ensure_set(scene, "Kitchen", prompt="small kitchen", seed=3)
    blocking.add_piece(scene, "chair", location=(1.0, 0.0, 0.2), name="Hero chair")
    blocking.add_piece(scene, "wall", name="Back wall", doors=[(0.0, 0.9, 2.1)])
    path = str(tmp_path / "x.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)

    scene = bpy.context.scene
    kitchen = scene.standin.active_set
    assert (kitchen.name, kitchen.prompt, kitchen.seed) == ("Kitchen", "small kitchen", 3)
    chair = bpy.data.objects["Hero chair"]
    wall = bpy.data.objects["Back wall"]
    assert set(kitchen.collection.objects) == {chair, wall}
    assert chair[blocking.PIECE_KIND_PROP] == "chair" and blocking.is_set_piece(wall)
    assert chair[blocking.SEAT_HEIGHT_PROP] == pytest.approx(0.45)
    assert blocking.seat_height_of(chair) == pytest.approx(0.65)
    assert blocking.seat_height_of(wall) is None
    assert blocking.piece_params(wall)["doors"] == [[0.0, 0.9, 2.1]]
    assert blocking.add_piece(scene, "table").material_slots[0].material == chair.material_slots[0].material
    assert blocking.ensure_set(scene, "Kitchen") == kitchen and len(scene.standin.sets) == 1
