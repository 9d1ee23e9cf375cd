# SPDX-License-Identifier: GPL-3.0-or-later
"""Blocking a set in Blender: sets as collections, and catalogue pieces added to them.

A set is a ``StandInSet`` item in ``scene.standin.sets`` whose collection ("SET <name>",
linked under the scene collection) holds its pieces. A piece is a mesh object built by
``set_pieces.build_piece``; it carries custom properties that later steps read back from the
saved file: ``standin_piece`` (its kind), ``standin_params`` (the parameters it was built
with, as JSON) and, for seats, ``standin_seat_height`` (metres above its origin).
"""

import json
import math

import bpy
from mathutils import Matrix, Vector

from . import set_pieces

#: Name of the set ``add_piece`` creates when the scene has none.
DEFAULT_SET_NAME = "Set 1"
#: A set's collection is named this followed by the set's name.
SET_COLLECTION_PREFIX = "SET "
#: The one material every piece shares.
PIECE_MATERIAL_NAME = "StandIn Set Piece"
PIECE_GREY = (0.5, 0.5, 0.5, 1.0)

PIECE_KIND_PROP = "standin_piece"
PIECE_PARAMS_PROP = "standin_params"
SEAT_HEIGHT_PROP = "standin_seat_height"


#: Parameters for a wall with a standard door and/or window (pure; see ``set_pieces.wall_params``).
wall_params = set_pieces.wall_params


def set_collection_name(set_name: str) -> str:
    return f"{SET_COLLECTION_PREFIX}{set_name}"


def _in_scene(scene, collection) -> bool:
    return collection == scene.collection or collection in scene.collection.children_recursive


def _ensure_set_collection(scene, set_item):
    """The set's collection, created (or found by name) and linked into the scene if needed."""
    collection = set_item.collection
    if collection is None:
        name = set_collection_name(set_item.name)
        collection = bpy.data.collections.get(name) or bpy.data.collections.new(name)
        set_item.collection = collection
    if not _in_scene(scene, collection):
        scene.collection.children.link(collection)
    return collection


def ensure_set(scene, name: str, prompt: str = "", seed: int = 1):
    """The set called ``name``, created if the scene has none by that name; it becomes active.

    A new set gets ``prompt``, ``seed`` and a collection "SET <name>" under the scene
    collection. An existing one is reused as it is (a non-empty ``prompt`` replaces its prompt)
    and its collection is recreated or relinked if it went missing.
    """
    if not name.strip():
        raise ValueError("A set needs a name: give it one, e.g. 'Kitchen'.")
    sets = scene.standin.sets
    index = sets.find(name)
    if index < 0:
        set_item = sets.add()
        set_item.name = name
        set_item.prompt = prompt
        set_item.seed = seed
        index = len(sets) - 1
    else:
        set_item = sets[index]
        if prompt:
            set_item.prompt = prompt
    _ensure_set_collection(scene, set_item)
    scene.standin.set_index = index
    return set_item


def active_set_collection(scene):
    """The active set's collection (relinked or recreated if it went missing), or None without an active set."""
    set_item = scene.standin.active_set
    return None if set_item is None else _ensure_set_collection(scene, set_item)


def piece_material():
    """The neutral grey material all pieces share, created on first use."""
    material = bpy.data.materials.get(PIECE_MATERIAL_NAME)
    if material is None:
        material = bpy.data.materials.new(PIECE_MATERIAL_NAME)
        material.diffuse_color = PIECE_GREY
        material.roughness = 0.8
        if material.node_tree is not None:  # Blender 5 gives new materials a node tree
            for node in material.node_tree.nodes:
                if node.type == "BSDF_PRINCIPLED":
                    node.inputs["Base Color"].default_value = PIECE_GREY
    return material


def _piece_mesh_data(name: str, piece: set_pieces.PieceMesh):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(piece.verts, [], piece.faces)
    mesh.update()
    mesh.materials.append(piece_material())
    return mesh


def add_piece(
    scene,
    kind: str,
    location=(0.0, 0.0, 0.0),
    rotation_z_deg: float = 0.0,
    name: str | None = None,
    collection=None,
    **params,
):
    """Add a catalogue piece to the set and return its object.

    The object goes into ``collection``, else the active set's collection (a set called
    "Set 1" is made when there is none). ``params`` override the piece's defaults (see
    ``set_pieces.PIECES``); a bad kind or parameter raises ValueError before anything is added.
    """
    resolved = set_pieces.resolve_params(kind, **params)
    piece = set_pieces.build_piece(kind, **resolved)
    if collection is None:
        collection = active_set_collection(scene) or ensure_set(scene, DEFAULT_SET_NAME).collection
    object_name = name or set_pieces.PIECES[kind].label
    obj = bpy.data.objects.new(object_name, _piece_mesh_data(object_name, piece))
    obj.location = location
    obj.rotation_euler = (0.0, 0.0, math.radians(rotation_z_deg))
    obj.pass_index = 0
    obj[PIECE_KIND_PROP] = kind
    obj[PIECE_PARAMS_PROP] = json.dumps(resolved)
    if piece.seat_height is not None:
        obj[SEAT_HEIGHT_PROP] = piece.seat_height
    collection.objects.link(obj)
    return obj


def is_set_piece(obj) -> bool:
    """True for an object ``add_piece`` made."""
    return obj is not None and PIECE_KIND_PROP in obj


def _world_matrix(obj) -> Matrix:
    """The object's world matrix from its own transform and its parents', current without a depsgraph update."""
    if obj.parent is None:
        return obj.matrix_basis
    return _world_matrix(obj.parent) @ obj.matrix_parent_inverse @ obj.matrix_basis


def seat_height_of(obj) -> float | None:
    """World-space height a character sits at on this piece, or None when it is not a seat."""
    if obj is None or SEAT_HEIGHT_PROP not in obj:
        return None
    return (_world_matrix(obj) @ Vector((0.0, 0.0, float(obj[SEAT_HEIGHT_PROP])))).z


def piece_params(obj) -> dict | None:
    """The parameters the piece was built with (JSON lists for tuples), or None for anything else."""
    if obj is None or PIECE_PARAMS_PROP not in obj:
        return None
    return json.loads(obj[PIECE_PARAMS_PROP])
