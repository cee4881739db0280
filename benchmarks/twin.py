"""Cost of one control tick of a digital twin: physics for 1/30 s plus one render per camera (224 px).

Per scene: the tick (mj_step at the model's timestep for one 30 Hz period, then every camera rendered at
`--size`), timed over `--ticks` ticks while the arm moves along the scene's scripted pick-and-place, on one
core (`taskset -c 0` is applied when available). The floor: physics is a few hundred steps of a ~20-body
model (well under a millisecond each); rendering is the software rasteriser (llvmpipe) drawing each view,
so its cost scales with the triangles drawn and the pixels filled.

The ratio printed last is the control period over the tick cost: how many times faster than real time the
twin can run (>= 1.33 means a tick fits in 25 ms, what collection needs to keep 30 Hz with room to spare).

    MUJOCO_GL=egl python benchmarks/twin.py [--scene so100-cube-container] [--size 224] [--ticks 150]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from evo1cli.sim.twin import DEFAULT_SCENE, open_scene
from evo1cli.sim.twin.scene import mujoco_module

PERIOD_S = 1 / 30


def measure(name: str, size: int, ticks: int) -> dict[str, float]:
    mujoco = mujoco_module()
    robot = next(r for r, s in DEFAULT_SCENE.items() if s == name)
    scene = open_scene(robot, name)
    model = scene.build()
    data = mujoco.MjData(model)
    scene.place(model, data, seed=0)
    plan = scene.plan(model, data, np.random.default_rng(0))
    actuators = [model.actuator(a).id for a in scene.actuators]
    renderer = mujoco.Renderer(model, size, size)
    substeps = round(PERIOD_S / model.opt.timestep)
    physics, render = [], []
    for k in range(ticks):
        data.ctrl[actuators] = plan.at(k * PERIOD_S)
        t0 = time.perf_counter()
        for _ in range(substeps):
            mujoco.mj_step(model, data)
        t1 = time.perf_counter()
        for camera in scene.cameras.values():
            renderer.update_scene(data, camera=camera)
            renderer.render()
        t2 = time.perf_counter()
        physics.append(t1 - t0)
        render.append(t2 - t1)
    renderer.close()
    physics_ms, render_ms = 1e3 * statistics.median(physics), 1e3 * statistics.median(render)
    return {"physics_ms": physics_ms, "render_ms": render_ms, "tick_ms": physics_ms + render_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", action="append", help="scene (repeatable; default: every scene)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--ticks", type=int, default=150)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ.setdefault("MUJOCO_GL", "egl")
    worst = 0.0
    for name in args.scene or sorted(DEFAULT_SCENE.values()):
        r = measure(name, args.size, args.ticks)
        worst = max(worst, r["tick_ms"])
        print(f"{name}: physics {r['physics_ms']:.2f} ms + two {args.size} px renders {r['render_ms']:.2f} ms = "
              f"{r['tick_ms']:.2f} ms per tick (median of {args.ticks}, one core)")  # fmt: skip
    ratio = 1e3 * PERIOD_S / worst
    print(f"real-time factor (period {1e3 * PERIOD_S:.1f} ms / slowest tick {worst:.2f} ms): {ratio:.2f}x")


if __name__ == "__main__":
    main()
