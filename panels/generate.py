# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate panel: the backend connection, Generate / Generate all with progress, and the shot's takes."""

import bpy

from .common import StandInPanel

_STATE_ICONS = {"QUEUED": "TIME", "RUNNING": "SORTTIME", "DONE": "CHECKMARK", "FAILED": "ERROR",
                "CANCELLED": "CANCEL", "LOST": "QUESTION"}


class STANDIN_UL_takes(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=item.name, icon="IMAGE_DATA")
        row.label(text=f"seed {item.seed}")
        row.label(text=item.profile)
        row.prop(item, "starred", text="", icon="SOLO_ON" if item.starred else "SOLO_OFF", emboss=False)


def _eta(seconds: float) -> str:
    if seconds < 0:
        return ""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f", {minutes}:{seconds:02d} left"


class STANDIN_PT_generate(StandInPanel, bpy.types.Panel):
    bl_idname = "STANDIN_PT_generate"
    bl_label = "Generate"

    @classmethod
    def poll(cls, context):
        return context.scene.standin.data_version > 0

    def draw(self, context):
        from ..addon import generation

        layout = self.layout
        data = context.scene.standin
        project = data.project

        box = layout.box()
        col = box.column(align=True)
        col.prop(project, "backend_url", text="Backend")
        col.prop(project, "backend_token", text="Token")
        row = box.row(align=True)
        row.operator("standin.backend_test", icon="LINKED")
        row.operator("standin.backend_start", icon="PLAY", text="Start Local")

        col = layout.column(align=True)
        for prop, kind in (("base_model", "BASE"), ("ip_adapter", "IP_ADAPTER")):
            row = col.row(align=True)
            row.prop(project, prop)
            row.operator("standin.pick_model", text="", icon="VIEWZOOM").kind = kind
        row = layout.row(align=True)
        row.prop(project, "profile", expand=True)
        layout.prop(project, "variations")
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("standin.generate", text="Generate", icon="RENDER_STILL").all_shots = False
        row.operator("standin.generate", text="Generate All", icon="RENDER_ANIMATION").all_shots = True
        if generation.running_batches():
            layout.operator("standin.generate_cancel", icon="CANCEL", text="Cancel")

        shot = data.active_shot
        if shot is None:
            return
        if shot.generation != "NONE":
            box = layout.box()
            box.alert = shot.generation in ("FAILED", "LOST")
            text = shot.job_message or shot.generation.title()
            if shot.generation == "RUNNING" and shot.job_total:
                frame = f", frame {shot.job_frame}" if shot.job_frame >= 0 else ""
                text = f"step {shot.job_step}/{shot.job_total}{frame}{_eta(shot.job_eta)} — {text}"
            box.label(text=f"{shot.name}: {text}", icon=_STATE_ICONS.get(shot.generation, "DOT"))
        layout.label(text=f"Takes of {shot.name}")
        layout.template_list("STANDIN_UL_takes", "", shot, "takes", shot, "take_index", rows=3)
        row = layout.row(align=True)
        row.operator("standin.take_activate", text="Use Take", icon="CHECKMARK").index = -1
        row.operator("standin.take_star", text="", icon="SOLO_ON")
        reroll = row.operator("standin.generate", text="Reroll", icon="FILE_REFRESH")
        reroll.all_shots, reroll.new_seed = False, True
        layout.prop(shot, "seed")
        layout.prop(project, "take_opacity", slider=True)
        take = shot.active_take
        if take is not None:
            col = layout.column(align=True)
            col.label(text=f"{take.name}: {take.engine} {take.model} · {take.created[:16].replace('T', ' ')}")
            if take.loras:
                col.label(text=take.loras)


classes = (STANDIN_UL_takes, STANDIN_PT_generate)
