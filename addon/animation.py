# SPDX-License-Identifier: GPL-3.0-or-later
"""F-curves of an ID through its action slot: the layered-action API of Blender 4.4+ and 5.x.

(5.0 removed ``Action.fcurves``; ``anim_utils.action_get_channelbag_for_slot`` works on both.)
"""

from bpy_extras import anim_utils


def channelbag(owner):
    """The F-curve container of ``owner``'s assigned action slot, or None when it has no action."""
    animation = owner.animation_data
    if animation is None or animation.action is None:
        return None
    return anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)


def fcurves(owner) -> list:
    bag = channelbag(owner)
    return list(bag.fcurves) if bag is not None else []


def set_interpolation(owner, interpolation: str = "LINEAR") -> None:
    for curve in fcurves(owner):
        for point in curve.keyframe_points:
            point.interpolation = interpolation
