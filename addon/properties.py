# SPDX-License-Identifier: GPL-3.0-or-later
"""The StandIn scene data model, stored in the .blend as PropertyGroups on ``Scene.standin``.

project settings · cast (characters) · sets · shots. Everything a later step needs to rebuild
a shot (its subjects, size, lens, angle, move) is kept on the shot, so a shot can be re-framed
and its passes re-rendered from the saved file alone.
"""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import PropertyGroup

from . import camera_moves, formats, framing

#: Bumped when the stored layout changes; ``handlers`` upgrades older files on load.
DATA_VERSION = 1

SHOT_STATUSES = (
    ("BLOCKING", "Blocking", "Being blocked"),
    ("READY", "Ready", "Blocking approved, ready for passes and generation"),
    ("GENERATED", "Generated", "Has a generated take"),
    ("FINAL", "Final", "Approved"),
    ("BROKEN", "Broken", "Something this shot needs is missing: see its problem"),
)


def _apply_picture_format(self, context):
    """Keep the scene's render size and frame rate in step with the project settings."""
    scene = self.id_data
    apply_picture_format(scene)


def apply_picture_format(scene) -> None:
    project = scene.standin.project
    width, height = formats.frame_size(project.aspect, project.resolution)
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    rate = formats.FRAME_RATE_BY_KEY[project.fps]
    scene.render.fps = rate.fps
    scene.render.fps_base = rate.fps_base


#: Paths may be relative to the .blend ('//'), so a moved project folder keeps working.
_RELATIVE_PATH = {"PATH_SUPPORTS_BLEND_RELATIVE"}


def _recolor_stand_in(self, context):
    if self.stand_in is not None:
        from . import rig

        rig.set_color(self.stand_in, self.color)


def _sync_cut(self, context):
    """A shot's range or camera changed: move its marker so the cut follows."""
    from . import shots

    shots.sync_markers(self.id_data)


def _update_take_opacity(self, context):
    from . import take_display

    take_display.set_opacity(self.id_data, self.take_opacity)


def _take_chosen(self, context):
    from . import generation

    generation.on_take_chosen(self.id_data, self)


def _is_armature(self, obj):
    return obj.type == "ARMATURE"


def _is_camera(self, obj):
    return obj.type == "CAMERA"


class StandInProject(PropertyGroup):
    style_prompt: StringProperty(
        name="Style",
        description="Look of every frame, added to each prompt (e.g. 'pencil storyboard, grey wash')",
        default="cinematic storyboard frame, soft light",
    )
    negative_prompt: StringProperty(
        name="Negative",
        description="What no frame should show",
        default="blurry, deformed, extra limbs, text, watermark",
    )
    aspect: EnumProperty(
        name="Aspect",
        description="Picture aspect ratio of every shot",
        items=[(a.key, a.label, "") for a in formats.ASPECTS],
        default="16:9",
        update=_apply_picture_format,
    )
    resolution: IntProperty(
        name="Resolution",
        description="Long edge of the picture in pixels (the short edge follows the aspect, in steps of 8)",
        default=1920,
        min=formats.MIN_LONG_EDGE,
        max=formats.MAX_LONG_EDGE,
        update=_apply_picture_format,
    )
    fps: EnumProperty(
        name="Frame rate",
        items=[(f.key, f.label, "") for f in formats.FRAME_RATES],
        default="24",
        update=_apply_picture_format,
    )
    backend_url: StringProperty(
        name="Backend URL",
        description="Address of the StandIn generation backend",
        default="http://127.0.0.1:8765",
    )
    backend_token: StringProperty(
        name="Token",
        description="Bearer token the backend asks for (leave empty for a local backend)",
        subtype="PASSWORD",
    )
    canny_low: IntProperty(
        name="Edges low",
        description="Lower Canny threshold of the edge pass (lower finds fainter creases)",
        default=50, min=1, max=1000,
    )
    canny_high: IntProperty(
        name="Edges high",
        description="Upper Canny threshold of the edge pass",
        default=150, min=1, max=1000,
    )
    output_dir: StringProperty(
        name="Output folder",
        description="Where passes, takes and animatics go; '//' means next to the .blend",
        default="//standin/",
        subtype="DIR_PATH",
        options=_RELATIVE_PATH,
    )
    profile: EnumProperty(
        name="Profile",
        description="Generation quality",
        items=(("preview", "Preview", "Few steps, smaller size: fast"),
               ("final", "Final", "Full steps and size: slow")),
        default="preview",
    )
    variations: IntProperty(
        name="Variations", description="How many takes one Generate asks for, each with its own seed",
        default=1, min=1, max=8,
    )
    take_opacity: FloatProperty(
        name="Take opacity", description="Opacity of the active take behind the stand-ins in camera view",
        default=0.6, min=0.0, max=1.0, subtype="FACTOR", update=_update_take_opacity,
    )
    base_model: StringProperty(
        name="Base model", description="The backend's base model to generate with (empty: its first)",
    )
    ip_adapter: StringProperty(
        name="IP-Adapter", description="The backend's IP-Adapter for bit parts with a reference image (empty: its first)",
    )
    backend_timeout: FloatProperty(
        name="Time-out", description="Seconds to wait for the backend to answer a request",
        default=20.0, min=1.0, max=600.0, unit="TIME_ABSOLUTE",
    )


class StandInCharacter(PropertyGroup):
    # ``name`` (from PropertyGroup) is the character's name, used in prompts and file names.
    description: StringProperty(
        name="Description",
        description="Prompt describing the character's look (e.g. 'woman in her 40s, red coat')",
    )
    color: FloatVectorProperty(
        name="Colour",
        description="Stand-in colour in the viewport and the character's tint in sketches",
        subtype="COLOR",
        size=4,
        min=0.0,
        max=1.0,
        default=(0.8, 0.3, 0.2, 1.0),
        update=_recolor_stand_in,
    )
    height: FloatProperty(
        name="Height",
        description="Standing height of the stand-in",
        default=1.75,
        min=0.9,
        max=2.2,
        unit="LENGTH",
    )
    lora_file: StringProperty(name="LoRA", description="LoRA file name as the backend lists it")
    lora_trigger: StringProperty(name="Trigger word", description="Word that calls up the LoRA's character")
    lora_weight: FloatProperty(name="LoRA weight", default=0.8, min=0.0, max=2.0)
    reference_image: StringProperty(
        name="Reference",
        description="Reference image for a bit part without a LoRA (IP-Adapter)",
        subtype="FILE_PATH",
        options=_RELATIVE_PATH,
    )
    stand_in: PointerProperty(
        name="Stand-in",
        description="The armature this character drives",
        type=bpy.types.Object,
        poll=_is_armature,
    )
    pass_index: IntProperty(
        name="Pass index",
        description="Object index of this character's stand-in in the mask pass",
        default=0,
        min=0,
    )


#: Passes that make sense behind a camera view (the keys are the shot package's folder names).
BACKGROUND_PASSES = (
    ("NONE", "None", "No pass behind the camera view"),
    ("depth", "Depth", "The depth pass (near = white)"),
    ("openpose", "Pose", "The OpenPose skeletons"),
    ("canny", "Edges", "The canny edges"),
)

TIMES_OF_DAY = (
    ("UNSET", "Not set", "The prompt decides"),
    ("DAWN", "Dawn", ""),
    ("DAY", "Day", ""),
    ("GOLDEN_HOUR", "Golden hour", ""),
    ("DUSK", "Dusk", ""),
    ("NIGHT", "Night", ""),
)


class StandInSet(PropertyGroup):
    time_of_day: EnumProperty(name="Time of day", items=TIMES_OF_DAY, default="UNSET")
    prompt: StringProperty(
        name="Prompt",
        description="Prompt describing the location (e.g. 'small kitchen, night, rain on the window')",
    )
    seed: IntProperty(name="Seed", description="Seed of the set's background plate", default=1, min=0)
    collection: PointerProperty(
        name="Collection",
        description="Collection holding the set's pieces",
        type=bpy.types.Collection,
    )


class StandInSubject(PropertyGroup):
    """A character a shot frames, by name (names survive a stand-in rebuild)."""


GENERATION_STATES = (
    ("NONE", "Not generated", "No generation asked for yet"),
    ("QUEUED", "Queued", "Waiting for its passes or the backend"),
    ("RUNNING", "Running", "The backend is generating it"),
    ("DONE", "Done", "The last generation finished and was recorded as a take"),
    ("FAILED", "Failed", "The last generation failed: see its message"),
    ("CANCELLED", "Cancelled", "The last generation was cancelled"),
    ("LOST", "Lost", "The backend no longer knows the job that was running when Blender closed"),
)


class StandInTake(PropertyGroup):
    """A generated take, as recorded on its shot (the folder's take.json holds the same and more)."""

    # ``name`` is the take name, v001 style.
    folder: StringProperty(name="Folder", description="The take's folder, relative to the .blend",
                           subtype="DIR_PATH", options=_RELATIVE_PATH)
    seed: IntProperty(name="Seed", min=0)
    profile: StringProperty(name="Profile")
    engine: StringProperty(name="Engine")
    model: StringProperty(name="Model")
    loras: StringProperty(name="LoRAs", description="The characters' LoRAs and weights used")
    prompt: StringProperty(name="Prompt")
    created: StringProperty(name="Created", description="When the take was generated (UTC, ISO 8601)")
    job_id: StringProperty(name="Job")
    inputs_hash: StringProperty(name="Inputs", description="Hash of everything that decided the take's pixels")
    frame_count: IntProperty(name="Frames", min=0)
    starred: BoolProperty(name="Favourite", description="Mark this take as a favourite")


class StandInShot(PropertyGroup):
    # ``name`` is the shot name, SQ010_SH0010 style.
    camera: PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera, update=_sync_cut)
    frame_start: IntProperty(name="Start", default=1, min=0, update=_sync_cut)
    frame_end: IntProperty(name="End", default=48, min=0, update=_sync_cut)
    shot_size: EnumProperty(
        name="Shot size",
        items=[(s.key, s.label, s.abbreviation) for s in framing.SHOT_SIZES],
        default="MS",
    )
    lens: FloatProperty(name="Lens", description="Focal length", default=35.0, min=8.0, max=300.0, unit="CAMERA")
    sensor: EnumProperty(
        name="Sensor",
        items=[(s.key, s.label, "") for s in formats.SENSORS],
        default="S35",
    )
    angle: EnumProperty(name="Angle", items=framing.ANGLES, default="EYE")
    variant: EnumProperty(name="Framing", items=framing.VARIANTS, default="SINGLE")
    subjects: CollectionProperty(type=StandInSubject)
    move: EnumProperty(name="Move", items=camera_moves.MOVES, default="STATIC")
    move_amount: FloatProperty(
        name="Amount",
        description="How far the move goes: metres for travel, degrees for pan/tilt/orbit, mm for zoom",
        default=1.0,
    )
    easing: EnumProperty(name="Easing", items=camera_moves.EASINGS, default="EASE_IN_OUT")
    action: StringProperty(name="Action", description="What happens in the shot, used in its prompt")
    notes: StringProperty(name="Notes", description="Notes for the crew or the editor")
    status: EnumProperty(name="Status", items=SHOT_STATUSES, default="BLOCKING")
    problem: StringProperty(name="Problem", description="Why the shot is marked broken, and what to do")
    set_name: StringProperty(name="Set", description="The set this shot plays in")
    background_pass: EnumProperty(
        name="Show pass",
        description="Pass shown behind the shot's camera view after its passes render",
        items=BACKGROUND_PASSES,
        default="NONE",
    )
    seed: IntProperty(name="Seed", description="Seed of the shot's next take (Reroll picks a new one)",
                      default=1, min=0)
    takes: CollectionProperty(type=StandInTake)
    take_index: IntProperty(name="Active take", description="The take shown and used in the animatic",
                            default=-1, min=-1, update=_take_chosen)
    # The generation in flight (or the last one): survives a save, so a reopened file can pick it up.
    generation: EnumProperty(name="Generation", items=GENERATION_STATES, default="NONE")
    job_id: StringProperty(name="Backend job", description="Id of the backend job in flight")
    job_backend: StringProperty(name="Backend URL", description="The backend that runs the job in flight")
    job_message: StringProperty(name="Message", description="Progress or what went wrong")
    job_step: IntProperty(min=0)
    job_total: IntProperty(min=0)
    job_frame: IntProperty(default=-1, description="The frame the backend is working on (-1: none yet)")
    job_eta: FloatProperty(default=-1.0)
    job_request: StringProperty(description="The job in flight's record-to-be, as JSON")

    @property
    def duration(self) -> int:
        return self.frame_end - self.frame_start + 1

    @property
    def active_take(self):
        return self.takes[self.take_index] if 0 <= self.take_index < len(self.takes) else None


class StandInScene(PropertyGroup):
    data_version: IntProperty(default=0)
    project: PointerProperty(type=StandInProject)
    cast: CollectionProperty(type=StandInCharacter)
    cast_index: IntProperty(name="Character", default=0)
    sets: CollectionProperty(type=StandInSet)
    set_index: IntProperty(name="Active set", default=0)
    shots: CollectionProperty(type=StandInShot)
    shot_index: IntProperty(name="Shot", default=0)

    @property
    def active_character(self):
        return self.cast[self.cast_index] if 0 <= self.cast_index < len(self.cast) else None

    @property
    def active_set(self):
        return self.sets[self.set_index] if 0 <= self.set_index < len(self.sets) else None

    @property
    def active_shot(self):
        return self.shots[self.shot_index] if 0 <= self.shot_index < len(self.shots) else None

    def character(self, name: str):
        return self.cast.get(name)


classes = (
    StandInProject,
    StandInCharacter,
    StandInSet,
    StandInSubject,
    StandInTake,
    StandInShot,
    StandInScene,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.standin = PointerProperty(type=StandInScene)


def unregister():
    del bpy.types.Scene.standin
    _unregister_classes()


def ensure_project(scene) -> "StandInScene":
    """Start StandIn on a scene (an old .blend has none): picture format and data version."""
    data = scene.standin
    if data.data_version == 0:
        data.data_version = DATA_VERSION
        apply_picture_format(scene)
    return data
