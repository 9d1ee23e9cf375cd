# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-ins in Blender: build the posable mannequin, pose it from the library, read its joints.

A stand-in is an armature object (``SI_<name>``) carrying the custom properties
``standin_character`` and ``standin_height``, with the segmented body mesh as its child
(Armature modifier, one vertex group per segment). The skeleton, body and poses come from the
pure modules ``mannequin`` and ``poses``; this module only turns them into Blender data.
"""

import math

import bpy
from mathutils import Vector

from . import animation, framing, mannequin, poses

CHARACTER_PROP = "standin_character"
HEIGHT_PROP = "standin_height"
EYES_PROP = "standin_eyes"
LOOK_AT_CONSTRAINT = "StandIn Look At"
#: Share of the look-at turn taken by the neck (the head does the rest).
NECK_LOOK_SHARE = 0.4
_POSE_PATH_PREFIX = "pose.bones["


# --- building -----------------------------------------------------------------------------


def is_stand_in(obj) -> bool:
    """Whether ``obj`` is a StandIn stand-in armature."""
    return obj is not None and getattr(obj, "type", None) == "ARMATURE" and CHARACTER_PROP in obj.keys()


def skeleton_of(armature) -> mannequin.Skeleton:
    """The rest skeleton a stand-in was built from."""
    return mannequin.skeleton(float(armature[HEIGHT_PROP]))


def body_of(armature):
    """The body mesh object a stand-in deforms, or None if it has none any more."""
    for child in armature.children:
        if child.type == "MESH" and any(m.type == "ARMATURE" and m.object == armature for m in child.modifiers):
            return child
    return None


def _build_bones(armature_obj, scene, skel: mannequin.Skeleton) -> None:
    """Create the edit bones: edit mode on the armature, made active in the scene's view layer."""
    current = bpy.context.object
    if current is not None and current.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    view_layer.objects.active = armature_obj
    context = {"scene": scene, "view_layer": view_layer, "active_object": armature_obj, "object": armature_obj}
    with bpy.context.temp_override(**context):
        bpy.ops.object.mode_set(mode="EDIT")
    with bpy.context.temp_override(edit_object=armature_obj, **context):
        edit_bones = armature_obj.data.edit_bones
        for bone in skel.bones:
            edit_bone = edit_bones.new(bone.name)
            edit_bone.head, edit_bone.tail, edit_bone.roll = bone.head, bone.tail, bone.roll
            edit_bone.use_deform = bone.deform
            if bone.parent is not None:
                parent = edit_bones[bone.parent]
                edit_bone.parent = parent
                edit_bone.use_connect = (Vector(bone.head) - parent.tail).length < 1e-6
        bpy.ops.object.mode_set(mode="OBJECT")


def _make_material(name: str, color) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.diffuse_color = color
    if material.node_tree is None:  # Blender 4.5; 5.0 materials always have nodes
        material.use_nodes = True
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            node.inputs["Base Color"].default_value = color
            node.inputs["Roughness"].default_value = 0.6
    return material


def _make_body(name: str, skel: mannequin.Skeleton, armature_obj, material) -> bpy.types.Object:
    body = mannequin.body_mesh(skel)
    mesh = bpy.data.meshes.new(f"{name}_body")
    mesh.from_pydata(body.verts, [], body.faces)
    mesh.validate()
    mesh.update()
    mesh.materials.append(material)
    obj = bpy.data.objects.new(f"{name}_body", mesh)
    for bone_name, indices in body.groups.items():
        obj.vertex_groups.new(name=bone_name).add(indices, 1.0, "REPLACE")
    obj.parent = armature_obj
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature_obj
    return obj


def create_stand_in(scene, name: str, height: float = 1.75, color=(0.8, 0.3, 0.2, 1.0), location=(0.0, 0.0, 0.0),
                    facing_deg: float = 0.0, collection=None, pass_index: int = 1) -> bpy.types.Object:
    """Build a posable stand-in for the character ``name``; returns its armature object.

    It stands at ``location`` with its soles there, turned ``facing_deg`` about Z (0 faces -Y),
    and is linked into ``collection`` (default: the scene's master collection). The body mesh
    gets ``color`` (material, viewport and object colour) and ``pass_index`` for index masks.
    """
    skel = mannequin.skeleton(height)
    color = tuple(float(c) for c in color)
    if len(color) == 3:
        color += (1.0,)
    object_name = f"SI_{name}"
    armature_obj = bpy.data.objects.new(object_name, bpy.data.armatures.new(object_name))
    armature_obj.data.display_type = "OCTAHEDRAL"
    armature_obj.show_in_front = True
    armature_obj[CHARACTER_PROP] = name
    armature_obj[HEIGHT_PROP] = skel.height
    scene.collection.objects.link(armature_obj)  # edit mode needs it in the view layer
    _build_bones(armature_obj, scene, skel)
    for pose_bone in armature_obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"

    material = _make_material(object_name, color)
    body = _make_body(armature_obj.name, skel, armature_obj, material)
    body.color = color
    body.pass_index = pass_index
    body.hide_select = True  # clicking the mannequin picks its bones, i.e. the stand-in

    target = scene.collection if collection is None else collection
    if target != scene.collection:
        target.objects.link(armature_obj)
        scene.collection.objects.unlink(armature_obj)
    target.objects.link(body)
    armature_obj.location = location
    armature_obj.rotation_euler = (0.0, 0.0, math.radians(facing_deg))
    return armature_obj


def set_color(armature, color) -> None:
    """Recolour a stand-in: its material (render and viewport) and its body's object colour."""
    body = body_of(armature)
    if body is None:
        return
    color = tuple(float(c) for c in color) + ((1.0,) if len(color) == 3 else ())
    body.color = color
    for material in body.data.materials:
        material.diffuse_color = color
        for node in material.node_tree.nodes if material.node_tree else ():
            if node.type == "BSDF_PRINCIPLED":
                node.inputs["Base Color"].default_value = color


def head_target(armature) -> bpy.types.Object:
    """An Empty between the stand-in's eyes that moves with its head, for ``look_at`` or a camera.

    Made once (bone-parented to the head, linked beside the armature) and reused after that.
    """
    for child in armature.children:
        if child.get(EYES_PROP):
            return child
    empty = bpy.data.objects.new(f"{armature.name}_eyes", None)
    empty.empty_display_type = "SPHERE"
    empty.empty_display_size = 0.03
    empty[EYES_PROP] = True
    for collection in armature.users_collection:
        collection.objects.link(empty)
    empty.parent = armature
    empty.parent_type = "BONE"
    empty.parent_bone = "head"
    skel = skeleton_of(armature)
    eyes = (Vector(skel.rest_point(skel.joints["r_eye"])) + Vector(skel.rest_point(skel.joints["l_eye"]))) / 2
    head = armature.data.bones["head"]
    # a bone child sits in the bone's frame, from its tail
    empty.location = head.matrix_local.to_3x3().transposed() @ (eyes - head.tail_local)
    return empty


def remove_stand_in(armature) -> None:
    """Delete a stand-in: its body and eyes target, its material and mesh when unused, the armature."""
    for child in list(armature.children):
        if child.get(EYES_PROP):
            bpy.data.objects.remove(child, do_unlink=True)
    body = body_of(armature)
    if body is not None:
        mesh = body.data
        materials = [m for m in mesh.materials if m is not None]
        bpy.data.objects.remove(body, do_unlink=True)
        if mesh.users == 0:
            bpy.data.meshes.remove(mesh)
        for material in materials:
            if material.users == 0:
                bpy.data.materials.remove(material)
    data = armature.data
    bpy.data.objects.remove(armature, do_unlink=True)
    if data.users == 0:
        bpy.data.armatures.remove(data)


# --- posing -------------------------------------------------------------------------------


def pose_fcurves(armature) -> list:
    """The F-curves animating the stand-in's pose bones."""
    channelbag = animation.channelbag(armature)
    if channelbag is None:
        return []
    return [fc for fc in channelbag.fcurves if fc.data_path.startswith(_POSE_PATH_PREFIX)]


def _clear_pose_animation(armature) -> None:
    channelbag = animation.channelbag(armature)
    for fcurve in pose_fcurves(armature):
        channelbag.fcurves.remove(fcurve)


def _is_cycling(armature) -> bool:
    return any(m.type == "CYCLES" for fc in pose_fcurves(armature) for m in fc.modifiers)


def _set_pose(armature, skel: mannequin.Skeleton, key: poses.PoseKey) -> None:
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.rotation_quaternion = key.rotations.get(pose_bone.name, (1.0, 0.0, 0.0, 0.0))
        pose_bone.location = key.root_location if pose_bone.name == skel.root else (0.0, 0.0, 0.0)
        pose_bone.scale = (1.0, 1.0, 1.0)


def _insert_keys(armature, skel: mannequin.Skeleton, frame: int) -> None:
    for pose_bone in armature.pose.bones:
        pose_bone.keyframe_insert("rotation_quaternion", frame=frame, group=pose_bone.name)
    root = armature.pose.bones[skel.root]
    root.keyframe_insert("location", frame=frame, group=root.name)


def _scene_of(armature):
    scenes = armature.users_scene
    return bpy.context.scene if not scenes or bpy.context.scene in scenes else scenes[0]


def apply_pose(armature, pose_name: str, frame: int | None = None, seat_height: float | None = None) -> None:
    """Pose a stand-in from the library and key it at ``frame`` (None: the current frame).

    A held pose keys every bone at ``frame``, replacing the pose keyed there and keeping the
    other keys, so poses can be blocked pose to pose. A cycle (walk, run, talk) owns the whole
    pose animation: it clears the earlier pose keys, keys one loop from ``frame`` and adds a
    Cycles modifier so it repeats forever; a held pose applied to a cycling rig clears the cycle.
    ``seat_height`` is where "sit" rests the hips, in metres above the stand-in's origin.
    """
    poses.check_pose(pose_name)
    scene = _scene_of(armature)
    skel = skeleton_of(armature)
    keys = poses.pose_keys(pose_name, skel, seat_height=seat_height, fps=scene.render.fps / scene.render.fps_base)
    frame = scene.frame_current if frame is None else int(frame)
    cyclic = keys[0].cyclic
    if cyclic or _is_cycling(armature):
        _clear_pose_animation(armature)
    for key in keys:
        _set_pose(armature, skel, key)
        _insert_keys(armature, skel, frame + key.frame_offset)
    if cyclic:
        for fcurve in pose_fcurves(armature):
            fcurve.modifiers.new("CYCLES")
            fcurve.update()
    _set_pose(armature, skel, keys[0])


# --- looking ------------------------------------------------------------------------------


def _front_axis(armature, bone_name: str) -> str:
    """The Damped Track axis of a bone that points where the character faces (-Y) at rest."""
    rest = armature.data.bones[bone_name].matrix_local.to_3x3()
    front = Vector((0.0, -1.0, 0.0))
    best = max(((rest.col[i].dot(front) * sign, i, sign) for i in range(3) for sign in (1, -1)))
    _, axis, sign = best
    return ("TRACK_" if sign > 0 else "TRACK_NEGATIVE_") + "XYZ"[axis]


def look_at(armature, target_object, influence: float = 1.0) -> None:
    """Make the stand-in's head (and partly its neck) follow ``target_object`` with live constraints.

    A stand-in target is looked in the eyes. Calling again retargets.
    """
    for bone_name, share in (("neck", NECK_LOOK_SHARE), ("head", 1.0)):
        pose_bone = armature.pose.bones[bone_name]
        constraint = pose_bone.constraints.get(LOOK_AT_CONSTRAINT)
        if constraint is None:
            constraint = pose_bone.constraints.new("DAMPED_TRACK")
            constraint.name = LOOK_AT_CONSTRAINT
        constraint.target = target_object
        if is_stand_in(target_object) and target_object != armature:
            constraint.subtarget = "head"
            eyes = skeleton_of(target_object).proportions
            head = target_object.data.bones["head"]
            constraint.head_tail = (eyes.chin_z + 0.5 * eyes.head_length - head.head_local.z) / head.length
        else:
            constraint.subtarget = ""
        constraint.track_axis = _front_axis(armature, bone_name)
        constraint.influence = max(0.0, min(1.0, influence * share))


def clear_look_at(armature) -> None:
    """Remove the look-at constraints; the head goes back to its pose."""
    for pose_bone in armature.pose.bones:
        constraint = pose_bone.constraints.get(LOOK_AT_CONSTRAINT)
        if constraint is not None:
            pose_bone.constraints.remove(constraint)


# --- reading the pose ---------------------------------------------------------------------


def _evaluated(armature):
    return armature.evaluated_get(bpy.context.evaluated_depsgraph_get())


def joint_positions(armature, skel: mannequin.Skeleton | None = None) -> dict[str, Vector]:
    """World positions of the 18 COCO joints and ``head_top`` in the evaluated pose.

    ``skel``: the stand-in's skeleton when the caller already has it (it depends only on the height).
    """
    evaluated = _evaluated(armature)
    skel = skel or skeleton_of(armature)
    world = evaluated.matrix_world
    ends = dict(skel.joints, head_top=skel.head_top)
    positions = {}
    for name, (bone_name, end) in ends.items():
        pose_bone = evaluated.pose.bones[bone_name]
        positions[name] = world @ (pose_bone.head if end == "head" else pose_bone.tail)
    return positions


def _front(armature, evaluated) -> Vector:
    """Horizontal world unit vector the body faces: the pelvis and chest fronts, else the object's."""
    world = evaluated.matrix_world.to_3x3()
    front = Vector((0.0, 0.0, 0.0))
    for bone_name in ("pelvis", "chest"):
        pose_bone = evaluated.pose.bones[bone_name]
        turn = pose_bone.matrix.to_3x3() @ pose_bone.bone.matrix_local.to_3x3().inverted()
        front += world @ (turn @ Vector((0.0, -1.0, 0.0)))
    front.z = 0.0
    if front.length < 0.3:  # lying or bent double: the way the object is turned
        front = world @ Vector((0.0, -1.0, 0.0))
        front.z = 0.0
    return front.normalized()


def subject_from_stand_in(armature) -> framing.Subject:
    """What framing needs to know of a stand-in, read off its evaluated pose in world space.

    ``feet`` is the point on the stand-in's floor (its origin's height) between the ankles;
    ``facing`` the horizontal way its pelvis and chest face (the object's front when lying).
    """
    evaluated = _evaluated(armature)
    joints = joint_positions(armature)
    world = evaluated.matrix_world
    feet = (joints["r_ankle"] + joints["l_ankle"]) / 2.0
    feet.z = world.translation.z  # the floor the stand-in stands on, whatever the pose

    def point(v) -> tuple[float, float, float]:
        return (float(v.x), float(v.y), float(v.z))

    return framing.Subject(
        name=str(armature[CHARACTER_PROP]),
        height=float(armature[HEIGHT_PROP]) * world.to_scale().z,
        head_top=point(joints["head_top"]),
        eyes=point((joints["r_eye"] + joints["l_eye"]) / 2.0),
        neck=point(joints["neck"]),
        feet=point(feet),
        facing=point(_front(armature, evaluated)),
        right_shoulder=point(joints["r_shoulder"]),
        left_shoulder=point(joints["l_shoulder"]),
    )

