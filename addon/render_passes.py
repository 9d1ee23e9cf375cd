# SPDX-License-Identifier: GPL-3.0-or-later
"""One Cycles render per frame through a shot camera, read back as Depth, Normal and Object Index arrays.

Cycles at one sample, no denoising and no bounces is the fastest headless way to get exact data
passes (Workbench writes only Combined; EEVEE compiles shaders in software for about a minute).
The passes reach Python through EXR files, because a render result's pixels cannot be read from
Python. How the files are written differs between the Blender versions StandIn supports, and that
difference lives in ``_CompositorPassFiles`` (5.0) and ``_MultilayerPassFile`` (4.5) alone:

- Blender 5.0 drops every pass but Combined from a multilayer EXR, so a compositor node group
  (``scene.compositing_node_group``) routes each pass from a Render Layers node to a File Output
  node that writes one single-layer EXR per pass.
- Blender 4.5 writes every enabled pass into the render output when it is a multilayer EXR, with
  the compositor switched off.

Checked on both versions: Cycles' Depth pass is already planar (the distance along the camera's
view axis, as ``world_to_camera_view`` gives it), not the distance along the ray, so it needs no
conversion; a panoramic camera's depth is the distance from the camera. Cycles writes 1e10 where a
ray hits nothing. The EXR files hold the image top row first, so the arrays need no flip.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Cycles writes this depth where a ray hits nothing; anything this far or further counts as a miss.
NO_HIT_DEPTH = 1e9

_DEPTH, _NORMAL, _OBJECT_INDEX = "Depth", "Normal", "Object Index"


@dataclass
class FrameBuffers:
    """The data passes of one rendered frame, row 0 at the top of the image.

    ``depth`` (H, W) float32: planar depth along the camera's view axis in metres, ``np.inf`` where
    nothing was hit. ``normal`` (H, W, 3) float32: world-space normals, zeros where nothing was hit.
    ``object_index`` (H, W) int32: each object's ``pass_index``, 0 for the background.
    """

    depth: np.ndarray
    normal: np.ndarray
    object_index: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        """(H, W) bool: where a ray hit a surface."""
        return np.isfinite(self.depth)


@dataclass
class _SavedSettings:
    """Attribute values as they were before the renderer changed them; ``restore`` puts them back.

    Values are put back in the order they were remembered, so an attribute whose allowed values
    depend on another (an image format's colour depth on its file format) is remembered after it.
    """

    values: list[tuple[object, str, object]] = field(default_factory=list)

    def remember(self, owner, *names: str) -> None:
        for name in names:
            self.values.append((owner, name, getattr(owner, name)))

    def change(self, owner, name: str, value) -> None:
        """Remember the attribute (once) and set it."""
        if not any(saved_owner == owner and saved_name == name for saved_owner, saved_name, _ in self.values):
            self.remember(owner, name)
        setattr(owner, name, value)

    def restore(self) -> None:
        problems = []
        for owner, name, value in self.values:
            try:
                setattr(owner, name, value)
            except (AttributeError, TypeError, ValueError, ReferenceError) as error:
                problems.append(f"{name}: {error}")
        self.values.clear()
        if problems:
            raise RuntimeError("Could not restore every render setting: " + "; ".join(problems))


def _read_exr_channels(path: pathlib.Path) -> dict[str, np.ndarray]:
    """Every channel of a (possibly multilayer) EXR file by its full name, top row first."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name: np.array(channel.pixels, dtype=np.float32)
                for part in exr.parts for name, channel in part.channels.items()}


def _first_channel(channels: dict[str, np.ndarray], path: pathlib.Path) -> np.ndarray:
    for name in ("R", "V", "Y", "Z", "X"):
        if name in channels:
            return channels[name]
    raise RuntimeError(f"The pass file {path.name} has none of the expected channels (it has {sorted(channels)}).")


class _CompositorPassFiles:
    """Blender 5.0: a compositor node group writes one single-layer EXR per pass."""

    def __init__(self, scene, view_layer, work_dir: pathlib.Path, saved: _SavedSettings):
        import bpy

        self.work_dir = work_dir
        saved.change(scene.render, "use_compositing", True)
        self.node_group = bpy.data.node_groups.new(".StandIn Render Passes", "CompositorNodeTree")
        saved.change(scene, "compositing_node_group", self.node_group)
        render_layers = self.node_group.nodes.new("CompositorNodeRLayers")
        render_layers.scene = scene
        render_layers.layer = view_layer.name
        self.file_output = self.node_group.nodes.new("CompositorNodeOutputFile")
        self.file_output.save_as_render = False
        self.file_output.format.media_type = "IMAGE"
        self.file_output.format.file_format = "OPEN_EXR"
        self.file_output.format.color_depth = "32"
        self.file_output.format.exr_codec = "NONE"
        self.file_output.directory = os.path.join(str(work_dir), "")
        for socket_type, pass_name in (("FLOAT", _DEPTH), ("VECTOR", _NORMAL), ("FLOAT", _OBJECT_INDEX)):
            self.file_output.file_output_items.new(socket_type, pass_name)
            self.node_group.links.new(render_layers.outputs[pass_name], self.file_output.inputs[pass_name])

    def prepare(self, stem: str) -> dict:
        """Point the output at files named after ``stem``; returns the render operator's arguments."""
        self.file_output.file_name = stem
        return {}

    def read(self, stem: str) -> tuple[dict[str, np.ndarray], list[pathlib.Path]]:
        """The passes by name (Depth and Object Index (H, W), Normal (H, W, 3)) and the files read."""
        files = sorted(self.work_dir.glob(stem + "*"))
        passes = {}
        for path in files:
            pass_name = path.name[len(stem):].split(".")[0].rstrip("0123456789")
            if pass_name not in (_DEPTH, _NORMAL, _OBJECT_INDEX):
                continue
            channels = _read_exr_channels(path)
            if pass_name == _NORMAL:
                passes[pass_name] = np.stack([channels[axis] for axis in "XYZ"], axis=-1)
            else:
                passes[pass_name] = _first_channel(channels, path)
        return passes, files

    def close(self) -> None:
        import bpy

        bpy.data.node_groups.remove(self.node_group)


class _MultilayerPassFile:
    """Blender 4.5: the render output itself, a multilayer EXR, holds every enabled pass."""

    def __init__(self, scene, view_layer, work_dir: pathlib.Path, saved: _SavedSettings):
        self.work_dir = work_dir
        self.render = scene.render
        self.layer_name = view_layer.name
        saved.change(scene.render, "use_compositing", False)
        image_settings = scene.render.image_settings
        saved.remember(image_settings, "file_format", "color_depth", "exr_codec", "color_mode")
        saved.change(scene.render, "use_file_extension", True)
        saved.remember(scene.render, "filepath")
        image_settings.file_format = "OPEN_EXR_MULTILAYER"
        image_settings.color_depth = "32"
        image_settings.exr_codec = "NONE"

    def prepare(self, stem: str) -> dict:
        self.render.filepath = str(self.work_dir / stem)
        return {"write_still": True}

    def read(self, stem: str) -> tuple[dict[str, np.ndarray], list[pathlib.Path]]:
        files = sorted(self.work_dir.glob(stem + "*"))
        channels = {}
        for path in files:
            channels.update(_read_exr_channels(path))
        prefix = self.layer_name + "."
        names = {_DEPTH: [prefix + "Depth.Z"], _OBJECT_INDEX: [prefix + "IndexOB.X"],
                 _NORMAL: [prefix + f"Normal.{axis}" for axis in "XYZ"]}
        passes = {}
        for pass_name, channel_names in names.items():
            if all(name in channels for name in channel_names):
                arrays = [channels[name] for name in channel_names]
                passes[pass_name] = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)
        return passes, files

    def close(self) -> None:
        pass


def _pass_output_for_this_blender():
    """The one place that picks how passes get to disk on this Blender version."""
    import bpy

    return _CompositorPassFiles if bpy.app.version >= (5, 0, 0) else _MultilayerPassFile


class PassRenderer:
    """Renders Depth, Normal and Object Index through ``camera``, one Cycles render per frame.

    Use it as a context manager: entering sets the scene up for fast data-pass renders once
    (Cycles on the CPU, one sample, no denoising, no bounces, the size, the camera, the passes,
    the output files); leaving restores every setting it changed, so the scene is left as it was.
    Timeline markers bound to cameras are unbound meanwhile, or they would switch the render to
    their camera::

        with PassRenderer(scene, shot.camera, 512, 512, work_dir) as renderer:
            buffers = renderer.render_frame(12, hidden=[clutter])
    """

    def __init__(self, scene, camera, width: int, height: int, work_dir: pathlib.Path):
        if width < 1 or height < 1:
            raise ValueError(f"The render size must be at least 1×1 pixels, not {width}×{height}.")
        if camera is None or camera.type != "CAMERA":
            raise ValueError(f"{getattr(camera, 'name', camera)!r} is not a camera object.")
        self.scene = scene
        self.camera = camera
        self.width = int(width)
        self.height = int(height)
        self.work_dir = pathlib.Path(work_dir).absolute()
        self._saved: _SavedSettings | None = None
        self._saved_markers: _SavedSettings | None = None
        self._saved_frame: tuple[int, float] = (0, 0.0)
        self._output = None
        self._view_layer = None
        self._renders = 0

    def __enter__(self) -> "PassRenderer":
        import bpy

        scene = self.scene
        self._view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
        self._saved_frame = (scene.frame_current, scene.frame_subframe)
        self._saved_markers = _SavedSettings()
        saved = self._saved = _SavedSettings()
        try:
            for marker in scene.timeline_markers:
                if marker.camera is not None:
                    self._saved_markers.change(marker, "camera", None)
            render = scene.render
            saved.change(render, "engine", "CYCLES")
            for name, value in (("resolution_x", self.width), ("resolution_y", self.height),
                                ("resolution_percentage", 100), ("use_border", False),
                                ("use_motion_blur", False), ("use_sequencer", False),
                                ("use_persistent_data", True)):
                saved.change(render, name, value)
            cycles = scene.cycles
            for name, value in (("device", "CPU"), ("samples", 1), ("use_denoising", False),
                                ("use_adaptive_sampling", False), ("max_bounces", 0),
                                ("filter_width", 0.01)):  # one sample at each pixel's centre
                saved.change(cycles, name, value)
            layer = self._view_layer
            for name in ("use", "use_pass_z", "use_pass_normal", "use_pass_object_index"):
                saved.change(layer, name, True)
            saved.change(scene, "camera", self.camera)
            self._output = _pass_output_for_this_blender()(scene, layer, self.work_dir, saved)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._close()

    def _close(self) -> None:
        output, self._output = self._output, None
        saved, markers, self._saved, self._saved_markers = self._saved, self._saved_markers, None, None
        try:
            if markers is not None:
                markers.restore()
                frame, subframe = self._saved_frame
                self.scene.frame_set(frame, subframe=subframe)
        finally:
            try:
                if saved is not None:
                    saved.restore()  # after the frame, whose marker may have switched the scene's camera
            finally:
                if output is not None:
                    output.close()  # once the scene no longer uses what it made

    def render_frame(self, frame: int, hidden: Sequence = ()) -> FrameBuffers:
        """Render ``frame`` once with the ``hidden`` objects left out of this render; returns its passes.

        The pass files are deleted once read. Raises ``RuntimeError`` when the render wrote nothing.
        """
        import bpy

        if self._output is None:
            raise RuntimeError("PassRenderer.render_frame works only inside a `with PassRenderer(...)` block.")
        scene = self.scene
        scene.frame_set(int(frame))
        scene.camera = self.camera
        self._renders += 1
        stem = f"standin_passes_{os.getpid()}_{self._renders:05d}_"
        operator_args = self._output.prepare(stem)
        hidden_saved = _SavedSettings()
        blender_error = ""
        passes: dict[str, np.ndarray] = {}
        files: list[pathlib.Path] = []
        try:
            for obj in hidden:
                hidden_saved.change(obj, "hide_render", True)
            try:
                bpy.ops.render.render(scene=scene.name, layer=self._view_layer.name, **operator_args)
            except RuntimeError as error:  # Blender 4.5 raises when it cannot save the render output
                blender_error = " ".join(str(error).split())
            if self.work_dir.is_dir():
                passes, files = self._output.read(stem)
        finally:
            hidden_saved.restore()
            for path in self.work_dir.glob(stem + "*") if self.work_dir.is_dir() else ():
                path.unlink(missing_ok=True)
        missing = [name for name in (_DEPTH, _NORMAL, _OBJECT_INDEX) if name not in passes]
        if missing:
            wrote = "wrote no files" if not files else "wrote files without " + ", ".join(missing)
            raise RuntimeError(
                f"The pass render of frame {frame} {wrote} to {self.work_dir}; check that this folder "
                "can be created and can be written to." + (f" (Blender: {blender_error})" if blender_error else "")
            )
        return _frame_buffers(passes)


def _frame_buffers(passes: dict[str, np.ndarray]) -> FrameBuffers:
    depth = passes[_DEPTH].astype(np.float32, copy=True)
    missed = ~(depth < NO_HIT_DEPTH)
    depth[missed] = np.inf
    normal = passes[_NORMAL].astype(np.float32, copy=True)
    normal[missed] = 0.0
    object_index = np.rint(passes[_OBJECT_INDEX]).astype(np.int32)
    return FrameBuffers(depth=depth, normal=normal, object_index=object_index)
