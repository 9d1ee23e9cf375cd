# SPDX-License-Identifier: GPL-3.0-or-later
"""What every StandIn operator shares: turning a user-facing error into a report."""

import functools

from ..addon.properties import ensure_project
from ..addon.shots import ShotError

#: Errors whose message is written for the user; anything else is a bug and keeps its traceback.
USER_ERRORS = (ShotError, ValueError)


def reports_errors(execute):
    """Wrap ``execute`` so a user error becomes one ERROR report and a cancelled operator."""

    @functools.wraps(execute)
    def wrapper(self, context):
        ensure_project(context.scene)
        try:
            return execute(self, context)
        except USER_ERRORS as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}

    return wrapper


def selected_stand_ins(context):
    """Armatures among the selected objects that are StandIn stand-ins, active one first."""
    from ..addon import rig

    selected = [o for o in (context.selected_objects or []) if rig.is_stand_in(o)]
    active = context.active_object
    if active in selected:
        selected.remove(active)
        selected.insert(0, active)
    return selected


def character_of(scene, stand_in):
    """The cast entry driven by a stand-in, or None."""
    for character in scene.standin.cast:
        if character.stand_in == stand_in:
            return character
    return None
