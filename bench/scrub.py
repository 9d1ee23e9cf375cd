# SPDX-License-Identifier: GPL-3.0-or-later
"""Scrubbing the demo scene: StandIn's handlers' cost per frame change, against the same scrub without them.

StandIn keeps a depsgraph handler that marks shots broken when their camera goes away; it runs on
every frame change, so it must stay cheap. Both runs scrub the same demo scene in one process,
alternating, and the ratio (with / without) is what to watch: aim <= 1.05.
"""

import statistics
import time

FRAMES_PER_RUN = 200
ROUNDS = 5


def _scrub(scene, frames) -> float:
    start = time.perf_counter()
    for frame in frames:
        scene.frame_set(frame)
    return time.perf_counter() - start


def run() -> None:
    from standin.cli import start_blender
    from standin.addon import demo, handlers

    scene = start_blender().context.scene
    demo.build_demo(scene)
    frames = [scene.frame_start + (i * 7) % (scene.frame_end - scene.frame_start + 1) for i in range(FRAMES_PER_RUN)]
    with_handlers, without = [], []
    for _ in range(ROUNDS):
        with_handlers.append(_scrub(scene, frames))
        handlers.unregister()
        without.append(_scrub(scene, frames))
        handlers.register()
    on, off = statistics.median(with_handlers), statistics.median(without)
    print(f"scrub {FRAMES_PER_RUN} frames: with StandIn handlers {1000 * on / FRAMES_PER_RUN:.2f} ms/frame, "
          f"without {1000 * off / FRAMES_PER_RUN:.2f} ms/frame, ratio {on / off:.3f}")
