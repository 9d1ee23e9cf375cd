# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate shots on the backend, keep working meanwhile; pick, star and reroll takes; the connection."""

from __future__ import annotations

import random

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from ..addon import generation, shots, take_display
from ..addon.backend_client import BackendClient, BackendError
from .common import BackgroundCall, ModalJob, poll_has_shots, reports_errors

def target_shot(context):
    """The shot to generate: the one seen through the scene camera at the current frame, else the selected one."""
    scene = context.scene
    data = scene.standin
    camera = scene.camera
    if camera is not None and context.space_data is not None and getattr(context.space_data, "region_3d", None):
        if context.space_data.region_3d.view_perspective == "CAMERA":
            for shot in data.shots:
                if shot.camera == camera and shot.frame_start <= scene.frame_current <= shot.frame_end:
                    return shot
    return data.active_shot


def _report_summary(operator, summary) -> None:
    for line in summary.messages:
        operator.report({"WARNING"}, line)
    operator.report({"ERROR"} if summary.failed else {"INFO"}, summary.line())


class STANDIN_OT_generate(ModalJob, bpy.types.Operator):
    """Generate the shot (passes when stale, then the backend) and record the result as a new take.
    Blender stays usable while it runs; Esc or Cancel stops it"""

    not_undoable = ("takes arrive over minutes while the user keeps editing, like Render: undo would drop "
                    "the record of files that stay on disk")
    bl_idname = "standin.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    all_shots: BoolProperty(name="All shots", default=False,
                            description="Every shot; shots unchanged since their active take are skipped")
    force: BoolProperty(name="Force", default=False, description="Generate even when nothing changed")
    new_seed: BoolProperty(name="New seed", default=False, description="Reroll: pick a new seed first")

    timer_interval = 0.05
    _batch = None

    @classmethod
    def poll(cls, context):
        if not poll_has_shots(cls, context):
            return False
        if generation.running_batches():
            cls.poll_message_set("A generation is already running: wait for it or cancel it")
            return False
        return True

    def _names(self, context) -> list[str]:
        data = context.scene.standin
        if self.all_shots:
            return [s.name for s in data.shots if not shots.camera_problem(context.scene, s)]
        shot = target_shot(context)
        if shot is None:
            raise ValueError("Select a shot in the shot list, or look through a shot's camera.")
        problem = shots.camera_problem(context.scene, shot)
        if problem:
            raise ValueError(problem)
        if self.new_seed:
            shot.seed = random.randrange(2**31)
        return [shot.name]

    def _batch_for(self, context):
        if not bpy.data.filepath and context.scene.standin.project.output_dir.startswith("//"):
            raise ValueError("Save the .blend first: takes are stored next to it (//standin/<shot>/v001).")
        names = self._names(context)
        if not names:
            raise ValueError("No shot can be generated: every shot needs its camera (see the Shots panel).")
        return generation.GenerationBatch(context.scene, names, force=self.force or self.new_seed)

    @reports_errors
    def execute(self, context):
        """Scripts: generate synchronously."""
        summary = self._batch_for(context).run()
        _report_summary(self, summary)
        return {"FINISHED"} if summary.ok else {"CANCELLED"}

    def invoke(self, context, event):
        try:
            self._batch = self._batch_for(context)
        except (ValueError, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return self.start_modal(context)

    def _job_step(self, context) -> bool:
        more = self._batch.step()
        for area in context.screen.areas if context.screen else ():
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()
        return more

    def _job_progress(self, context):
        return self._batch.progress

    def _job_cancel(self, context) -> None:
        self._batch.cancel()

    def _job_finish(self, context):
        _report_summary(self, self._batch.summary)
        return {"FINISHED"} if self._batch.summary.ok else {"CANCELLED"}


class STANDIN_OT_generate_cancel(bpy.types.Operator):
    """Cancel the running generation (the backend job too); finished takes stay"""

    not_undoable = "it tells the backend to stop a job; that cannot be taken back"
    bl_idname = "standin.generate_cancel"
    bl_label = "Cancel Generation"

    @classmethod
    def poll(cls, context):
        if not generation.running_batches():
            cls.poll_message_set("No generation is running")
            return False
        return True

    def execute(self, context):
        for batch in generation.running_batches():
            batch.cancel()
        self.report({"INFO"}, "Cancelling: the backend stops after its current step")
        return {"FINISHED"}


def _shot_with_takes(cls, context):
    shot = context.scene.standin.active_shot
    if shot is None or not len(shot.takes):
        cls.poll_message_set("The selected shot has no takes yet: generate it first")
        return None
    return shot


class STANDIN_OT_take_activate(bpy.types.Operator):
    """Make this take the shot's active take: shown behind its camera and used in the animatic"""

    bl_idname = "standin.take_activate"
    bl_label = "Use Take"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Take", default=-1)

    @classmethod
    def poll(cls, context):
        return _shot_with_takes(cls, context) is not None

    @reports_errors
    def execute(self, context):
        shot = context.scene.standin.active_shot
        index = self.index if self.index >= 0 else shot.take_index
        if not 0 <= index < len(shot.takes):
            raise ValueError(f"{shot.name} has no take number {index + 1}.")
        generation.set_active_take(context.scene, shot, index)
        take = shot.active_take
        if not take_display.take_folder(take).is_dir():
            self.report({"WARNING"}, f"{shot.name} {take.name}: its folder {take.folder} is missing.")
        return {"FINISHED"}


class STANDIN_OT_take_star(bpy.types.Operator):
    """Star or unstar the active take as a favourite"""

    bl_idname = "standin.take_star"
    bl_label = "Favourite"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        shot = _shot_with_takes(cls, context)
        return shot is not None and shot.active_take is not None

    def execute(self, context):
        take = context.scene.standin.active_shot.active_take
        take.starred = not take.starred
        return {"FINISHED"}


# -- the connection ------------------------------------------------------------------------------------

#: What the backend last listed (/v1/models), for the cast's LoRA and reference pickers.
backend_models: dict = {}


def _describe(health: dict, models: dict) -> str:
    described = health.get("describe", {})
    device = described.get("device", "cpu") if isinstance(described, dict) else "?"
    counts = ", ".join(f"{len(models.get(k, []))} {k}" for k in ("bases", "loras", "ip_adapters"))
    return f"{health.get('engine', '?')} engine on {device}, version {health.get('version', '?')}; {counts}"


class STANDIN_OT_backend_test(BackgroundCall, bpy.types.Operator):
    """Ask the backend who it is: engine, device and the models it offers"""

    not_undoable = "it only asks the backend who it is; nothing in the scene changes"
    bl_idname = "standin.backend_test"
    bl_label = "Test Connection"

    def _context_values(self, context):
        project = context.scene.standin.project
        return project.backend_url, project.backend_token, project.backend_timeout

    def _work(self, values):
        url, token, timeout = values
        try:
            client = BackendClient(url, token=token or None, timeout=timeout)
            return client.health(), client.models()
        except BackendError as error:
            return error

    def _done(self, context, outcome):
        if isinstance(outcome, BackendError):
            self.report({"ERROR"}, str(outcome))
            return {"CANCELLED"}
        health, models = outcome
        backend_models.clear()
        backend_models.update(models)
        self.report({"INFO"}, _describe(health, models))
        return {"FINISHED"}


def _local_backend():
    from ..addon import local_backend

    return local_backend


class STANDIN_OT_backend_start(BackgroundCall, bpy.types.Operator):
    """Start a local backend with the sketch engine (no GPU, no downloads) and point the project at it.
    It stops when Blender closes"""

    not_undoable = "it starts a process outside Blender"
    bl_idname = "standin.backend_start"
    bl_label = "Start Local Backend"
    busy_text = "StandIn: starting the local backend…"

    def _work(self, values):
        local = _local_backend()
        try:
            return local.shared().start()
        except local.LocalBackendError as error:
            return error

    def _done(self, context, outcome):
        if isinstance(outcome, Exception):
            self.report({"ERROR"}, str(outcome))
            return {"CANCELLED"}
        project = context.scene.standin.project
        project.backend_url = outcome.url
        project.backend_token = ""
        self.report({"INFO"}, f"Local sketch backend running at {outcome.url}")
        return {"FINISHED"}


class STANDIN_OT_backend_stop(bpy.types.Operator):
    """Stop the local backend this Blender started"""

    not_undoable = "it stops a process outside Blender"
    bl_idname = "standin.backend_stop"
    bl_label = "Stop Local Backend"

    @classmethod
    def poll(cls, context):
        if not _local_backend().shared().running:
            cls.poll_message_set("No local backend was started from this Blender")
            return False
        return True

    def execute(self, context):
        _local_backend().shared().stop()
        return {"FINISHED"}


#: what each picker fills in, and from which list of /v1/models
_PICKABLE = {
    "LORA": ("loras", "the selected character's LoRA"),
    "BASE": ("bases", "the project's base model"),
    "IP_ADAPTER": ("ip_adapters", "the project's IP-Adapter (for bit parts with a reference image)"),
}
#: Blender keeps only pointers to an enum's strings: the items must outlive the call that made them.
_listed_items: list = []


def _model_items(self, context):
    listed = backend_models.get(_PICKABLE[self.kind][0], [])
    names = [entry.get("name", "") for entry in listed if entry.get("name")]
    _listed_items[:] = [(name, name, entry.get("family", "")) for name, entry in zip(names, listed)] or \
        [("", "(Test the connection first)", "")]
    return _listed_items


class STANDIN_OT_pick_model(bpy.types.Operator):
    """Pick a LoRA for the selected character, or the project's base model or IP-Adapter, from what the
    backend lists (Test Connection fetches the list)"""

    bl_idname = "standin.pick_model"
    bl_label = "Pick from the Backend"
    bl_property = "name"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="What", items=[(key, key.replace("_", "-").title(), what)
                                           for key, (_listed, what) in _PICKABLE.items()], default="LORA")
    name: EnumProperty(name="Name", items=_model_items)

    @classmethod
    def poll(cls, context):
        return True

    def execute(self, context):
        data = context.scene.standin
        if not self.name:
            self.report({"WARNING"}, f"The backend lists no {_PICKABLE[self.kind][0].replace('_', '-')}: press "
                                     "Test Connection, or add them to the backend's models.toml")
            return {"CANCELLED"}
        if self.kind == "LORA":
            if data.active_character is None:
                self.report({"ERROR"}, "Select a character in the cast list first.")
                return {"CANCELLED"}
            data.active_character.lora_file = self.name
        elif self.kind == "BASE":
            data.project.base_model = self.name
        else:
            data.project.ip_adapter = self.name
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}


classes = (STANDIN_OT_generate, STANDIN_OT_generate_cancel, STANDIN_OT_take_activate, STANDIN_OT_take_star,
           STANDIN_OT_backend_test, STANDIN_OT_backend_start, STANDIN_OT_backend_stop, STANDIN_OT_pick_model)
