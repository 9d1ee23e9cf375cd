# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate shots: passes when stale → a backend job → a take recorded on the shot.

The bpy edge of generation. ``GenerationBatch.step()`` runs on Blender's main thread (a modal
operator's timer, ``bpy.app.timers``, or a loop in the CLI): it renders stale passes one frame at
a time, hands finished packages to a ``generation_job.GenerationWorker`` (network and file transfer
on its own thread) and applies the worker's updates to the shots. Shots are looked up by name at
every step, so undo, renames and deletions between steps cannot leave a dangling pointer.

A shot whose inputs (passes, prompts, cast LoRAs, seed, profile) are the same as its active take's
is skipped unless forced. The job in flight is stored on the shot (id, backend, what to record), so
a file reopened after Blender closed picks the job up again (``resume_pending``).
"""

from __future__ import annotations

import json
import pathlib
import time
import weakref
from dataclasses import dataclass, field

import bpy

from . import pass_pipeline, project_paths, shot_package, take_display, takes
from .backend_client import BackendClient
from .generation_job import GenerationRequest, GenerationWorker, Update

_IN_FLIGHT = ("QUEUED", "RUNNING")


# -- what a shot's next take is made of ------------------------------------------------------------


def read_package(package_dir: pathlib.Path, shot_name: str) -> dict:
    """The shot package's shot.json, or PackageError when the passes are not complete."""
    data = shot_package.read_shot_json(package_dir)
    if data is None:
        raise shot_package.PackageError(f"{shot_name} has no complete passes at {package_dir}: render them again.")
    return data


def record_from_package(data: dict, shot_name: str, seed: int, profile: str, options: dict) -> dict:
    """The take record known before the job runs: prompts, LoRAs, inputs hash (from shot.json ``data``)."""
    characters = data.get("characters", [])
    loras = [{"character": c["name"], "file": c.get("lora_file", ""), "trigger": c.get("lora_trigger", ""),
              "weight": c.get("lora_weight", 0.0)} for c in characters if c.get("lora_file")]
    prompts = {"style": data.get("style_prompt", ""), "negative": data.get("negative_prompt", ""),
               "action": data.get("action", ""), "set": (data.get("set") or {}).get("prompt", ""),
               "characters": {c["name"]: c.get("prompt", "") for c in characters}}
    return {
        "shot": shot_name, "seed": seed, "profile": profile, "model": str(options.get("base", "")),
        "loras": loras, "prompts": prompts, "fps": data.get("fps", 24.0),
        "width": data.get("width", 0), "height": data.get("height", 0),
        "inputs_hash": inputs_hash_of(data, seed, profile, options),
    }


def inputs_hash_of(shot_json: dict, seed: int, profile: str, options: dict) -> str:
    # The engine is not part of it: the same passes, prompts and seed on another backend are the same
    # request (the take records which engine answered).
    package = shot_json.get("generation_hash") or shot_json["content_hash"]  # older packages: content
    return takes.inputs_hash(package, seed, profile, "", options)


def is_up_to_date(shot, data: dict, profile: str, options: dict) -> bool:
    """True when the shot's active take, still on disk, was made from exactly these inputs (``data``:
    the package's shot.json)."""
    take = shot.active_take
    if take is None or not take.inputs_hash:
        return False
    if takes.read_take(take_display.take_folder(take)) is None:
        return False
    return take.inputs_hash == inputs_hash_of(data, shot.seed, profile, options)


# -- applying what the worker reports ----------------------------------------------------------------


def record_take(scene, shot, folder: pathlib.Path, record: takes.TakeRecord):
    """Add a finished take to its shot and make it the active one."""
    entry = shot.takes.add()
    entry.name = record.name
    entry.folder = project_paths.blend_relative(folder)
    entry.seed = record.seed
    entry.profile = record.profile
    entry.engine = record.engine
    entry.model = record.model
    entry.loras = ", ".join(f"{l['character']}: {l['file']} @{l['weight']:g}" for l in record.loras)
    entry.prompt = " | ".join(p for p in (record.prompts.get("style", ""), record.prompts.get("action", "")) if p)
    entry.created = record.created
    entry.job_id = record.job_id
    entry.inputs_hash = record.inputs_hash
    entry.frame_count = len(record.frames)
    set_active_take(scene, shot, len(shot.takes) - 1)
    return entry


def set_active_take(scene, shot, index: int) -> None:
    shot.take_index = index
    on_take_chosen(scene, shot)


def on_take_chosen(scene, shot) -> None:
    """The active take changed (list click, Use Take, a new take): the seed follows, the display too."""
    take = shot.active_take
    if take is None:
        take_display.clear(shot)
        return
    shot.seed = take.seed
    if shot.status in ("BLOCKING", "READY"):
        shot.status = "GENERATED"
    take_display.show(scene, shot)


def _clear_job(shot) -> None:
    shot.job_id = ""
    shot.job_backend = ""
    shot.job_request = ""
    shot.job_step = shot.job_total = 0
    shot.job_frame = -1
    shot.job_eta = -1.0


def apply_update(scene, update: Update) -> str | None:
    """Write one worker update onto its shot; returns a line for the user's report, or None."""
    shot = scene.standin.shots.get(update.shot)
    if update.kind == "done" and update.take is not None and shot is None:
        return f"{update.shot} was renamed or removed while it generated; its take is at {update.take_folder}."
    if shot is None:
        return None
    if update.kind == "submitted":
        shot.generation = "QUEUED"
        shot.job_id = update.job_id or ""
        shot.job_message = update.message or "queued on the backend"
    elif update.kind == "progress" and not update.job_id:  # still uploading (or downloading a resumed job)
        shot.job_message = update.message or "uploading"
    elif update.kind == "progress":
        shot.generation = "RUNNING"
        shot.job_step, shot.job_total = update.step or 0, update.total or 0
        shot.job_frame = -1 if update.frame is None else int(update.frame)
        shot.job_eta = -1.0 if update.eta is None else float(update.eta)
        shot.job_message = update.message or ""
    elif update.kind == "done":
        record_take(scene, shot, pathlib.Path(update.take_folder), update.take)
        shot.generation = "DONE"
        shot.job_message = f"{update.take.name} done"
        _clear_job(shot)
        return f"{shot.name}: {update.take.name} ready"
    elif update.kind in ("failed", "cancelled", "lost"):
        shot.generation = update.kind.upper()
        shot.job_message = update.message or update.kind
        _clear_job(shot)
        return f"{shot.name}: {update.message or update.kind}"
    return None


# -- workers: one per backend, shared by every batch of this Blender session ---------------------------


_workers: dict[tuple[str, str, float], GenerationWorker] = {}


def worker_for(url: str, token: str, timeout: float) -> GenerationWorker:
    key = (url.rstrip("/"), token, float(timeout))
    worker = _workers.get(key)
    if worker is None:
        worker = GenerationWorker(lambda: BackendClient(key[0], token=token or None, timeout=key[2]))
        _workers[key] = worker
    return worker


def _project_worker(scene) -> GenerationWorker:
    project = scene.standin.project
    return worker_for(project.backend_url, project.backend_token, project.backend_timeout)


def close_workers() -> None:
    """Stop every worker thread (Blender is closing or the add-on unregisters); backend jobs keep running."""
    while _workers:
        _, worker = _workers.popitem()
        worker.close()


# -- a batch: the shots one Generate asked for ------------------------------------------------------------


@dataclass
class Summary:
    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{len(self.generated)} generated", f"{len(self.skipped)} unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(self.failed)})")
        if self.cancelled:
            parts.append(f"{len(self.cancelled)} cancelled")
        return "Generate: " + ", ".join(parts)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled


#: Batches still running, so loading another file can stop their pass renders first.
_live_batches: "weakref.WeakSet[GenerationBatch]" = weakref.WeakSet()


def running_batches() -> list["GenerationBatch"]:
    """Batches that have not finished (what the Cancel button reaches)."""
    return [batch for batch in list(_live_batches) if not batch.finished]


def abandon_everything() -> None:
    """Another file is about to load: stop pass renders (their scene is going away) and the workers.

    Jobs already on the backend keep running; a file saved with them in flight picks them up again.
    """
    for batch in list(_live_batches):
        batch.abandon()
    close_workers()


def project_options(scene) -> dict:
    """The job options the project sets: its base model and IP-Adapter, when picked (else the backend's)."""
    project = scene.standin.project
    options = {}
    if project.base_model:
        options["base"] = project.base_model
    if project.ip_adapter:
        options["ip_adapter"] = project.ip_adapter
    return options


class GenerationBatch:
    """Generate some shots: ``step()`` until it returns False, ``cancel()`` any time (Esc)."""

    def __init__(self, scene, shot_names: list[str], *, force: bool = False, variations: int | None = None,
                 profile: str | None = None, options: dict | None = None, worker: GenerationWorker | None = None,
                 pass_scale: float = 1.0):
        project = scene.standin.project
        self.scene_name = scene.name
        self.force = force
        self.variations = variations or project.variations
        self.profile = profile or project.profile
        self.options = project_options(scene) if options is None else dict(options)
        self.worker = worker or _project_worker(scene)
        self.backend = project.backend_url
        self.summary = Summary()
        self._waiting: dict[str, int] = {}  # shot → takes still expected from the worker
        self._cancelled = False
        for name in shot_names:
            shot = scene.standin.shots.get(name)
            if shot is not None:
                shot.generation = "QUEUED"
                shot.job_message = "rendering passes"
        self.passes = pass_pipeline.PassJob(scene, list(shot_names), scale=pass_scale)
        self._handled = 0
        self._abandoned = False
        self.finished = False
        _live_batches.add(self)

    @property
    def scene(self):
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise RuntimeError(f"the scene {self.scene_name!r} is gone")
        return scene

    @property
    def progress(self) -> tuple[int, int, str]:
        """(done, total, what) for a progress bar: the passes while they render, then the backend's steps."""
        if self.passes.busy and self.passes.progress is not None:
            passes = self.passes.progress
            return passes.done, passes.total, f"passes {passes.shot} {passes.done}/{passes.total}"
        shots = [shot for name in self._waiting if (shot := self.scene.standin.shots.get(name)) is not None]
        done = sum(shot.job_step for shot in shots)
        total = sum(max(1, shot.job_total) for shot in shots)
        running = [shot for shot in shots if shot.generation == "RUNNING"]
        what = ", ".join(f"{shot.name} step {shot.job_step}/{shot.job_total}"
                         + (f" frame {shot.job_frame}" if shot.job_frame >= 0 else "")
                         + (f" ~{shot.job_eta:.0f} s left" if shot.job_eta >= 0 else "")
                         for shot in running[:2]) or "waiting for the backend"
        return done, max(total, 1), what

    def abandon(self) -> None:
        """Stop at once without touching the scene again (it is being unloaded)."""
        self.passes.cancel()
        self._waiting.clear()
        self._abandoned = self.finished = True

    def step(self) -> bool:
        """Advance by one pass render and apply what the worker reported; False when all is done."""
        if self._abandoned:
            return False
        scene = self.scene
        more_passes = False if self._cancelled else self.passes.tick()
        for result in self.passes.results[self._handled:]:
            self._handled += 1
            self._after_passes(scene, result)
        for update in self.worker.poll():
            self._apply(scene, update)
        self.finished = not (more_passes or self._waiting)
        return not self.finished

    def _after_passes(self, scene, result) -> None:
        shot = scene.standin.shots.get(result.shot)
        if shot is None:
            return
        self.summary.messages.extend(f"{result.shot}: {w}" for w in result.warnings)
        if not result.ok:
            shot.generation = "CANCELLED" if result.status == "cancelled" else "FAILED"
            shot.job_message = result.message
            (self.summary.cancelled if result.status == "cancelled" else self.summary.failed).append(shot.name)
            if result.status != "cancelled":
                self.summary.messages.append(result.message)
            return
        try:
            data = read_package(result.package_dir, shot.name)
            if not self.force and self.variations == 1 and is_up_to_date(shot, data, self.profile, self.options):
                shot.generation = "DONE"
                shot.job_message = "unchanged since its active take"
                self.summary.skipped.append(shot.name)
                return
            shot_dir = result.package_dir.parent  # <output>/<shot>/: passes/ and the takes beside it
            requests = []
            for n in range(self.variations):
                seed = (shot.seed + n) % 2**32
                record = record_from_package(data, shot.name, seed, self.profile, self.options)
                record["backend"] = self.backend
                spec = {"profile": self.profile, "seed": seed, "takes": 1, "options": self.options}
                requests.append(GenerationRequest(shot.name, result.package_dir, shot_dir, spec, record))
        except (shot_package.PackageError, OSError, ValueError) as error:
            shot.generation = "FAILED"
            shot.job_message = str(error)
            self.summary.failed.append(shot.name)
            self.summary.messages.append(f"{shot.name}: {error}")
            return
        shot.generation = "QUEUED"
        shot.job_message = "sent to the backend"
        shot.job_backend = self.backend
        shot.job_request = json.dumps(_request_json(requests[0]))
        self._waiting[shot.name] = len(requests)
        for request in requests:
            self.worker.submit(request)

    def _apply(self, scene, update: Update) -> None:
        if update.kind == "submitted":
            shot = scene.standin.shots.get(update.shot)
            if shot is not None and shot.job_request:
                # what a reopened file needs to pick the job up again
                stored = json.loads(shot.job_request)
                stored["job_id"] = update.job_id
                shot.job_request = json.dumps(stored)
        line = apply_update(scene, update)
        if update.kind in ("done", "failed", "cancelled", "lost") and update.shot in self._waiting:
            self._waiting[update.shot] -= 1
            if self._waiting[update.shot] <= 0:
                del self._waiting[update.shot]
            bucket = {"done": self.summary.generated, "failed": self.summary.failed,
                      "lost": self.summary.failed, "cancelled": self.summary.cancelled}[update.kind]
            if update.shot not in bucket:
                bucket.append(update.shot)
            if line and update.kind != "done":
                self.summary.messages.append(line)

    def cancel(self) -> None:
        """Esc: stop rendering passes and cancel this batch's backend jobs; finished takes stay."""
        self._cancelled = True
        self.passes.cancel()
        for result in self.passes.results[self._handled:]:
            self._handled += 1
            self._after_passes(self.scene, result)
        for name in list(self._waiting):
            self.worker.cancel(name)

    def run(self, poll_seconds: float = 0.02, timeout: float | None = None) -> Summary:
        """Scripts and the CLI: step until done (sleeping while only the backend works)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.step():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                while self.step():
                    time.sleep(poll_seconds)
                break
            if not self.passes.busy:
                time.sleep(poll_seconds)
        return self.summary


def _request_json(request: GenerationRequest) -> dict:
    return {"package_dir": str(request.package_dir), "shot_dir": str(request.shot_dir), "spec": request.spec,
            "record": request.record}


# -- after Blender restarts ------------------------------------------------------------------------------


def resume_pending(scene, worker: GenerationWorker | None = None) -> list[str]:
    """Pick up jobs that were in flight when the file was saved; return the shots resumed."""
    resumed = []
    for shot in scene.standin.shots:
        if shot.generation not in _IN_FLIGHT:
            continue
        try:
            stored = json.loads(shot.job_request) if shot.job_request else {}
        except ValueError:
            stored = {}
        job_id = stored.get("job_id") or shot.job_id
        if not job_id or not stored.get("shot_dir"):
            shot.generation = "LOST"
            shot.job_message = "Blender closed before the job reached the backend: generate it again."
            _clear_job(shot)
            continue
        project = scene.standin.project
        backend = shot.job_backend or project.backend_url
        chosen = worker or worker_for(backend, project.backend_token, project.backend_timeout)
        chosen.submit(GenerationRequest(shot.name, pathlib.Path(stored.get("package_dir", "")),
                                        pathlib.Path(stored["shot_dir"]), stored.get("spec", {}),
                                        stored.get("record", {}), resume_job_id=job_id))
        shot.job_message = f"picking up job {job_id[:8]} again"
        resumed.append(shot.name)
    return resumed


def apply_worker_updates(worker: GenerationWorker | None = None) -> bool:
    """Apply updates of resumed jobs (no batch running); True while any worker is still busy."""
    workers = [worker] if worker is not None else list(_workers.values())
    for each in workers:
        for update in each.poll():
            for scene in bpy.data.scenes:
                if scene.standin.shots.get(update.shot) is not None and (
                        scene.standin.shots[update.shot].job_id in ("", update.job_id) or update.kind == "submitted"):
                    apply_update(scene, update)
                    break
    return any(each.busy for each in workers)
