"""`TwinWorld`: a scene's MuJoCo world running in real time, rendered at the cameras' rate.

    world = TwinWorld(scene, {"front": (224, 224), "wrist": (224, 224)}, fps=30)
    world.start()                               # the render thread; fails in one line without headless OpenGL
    with world.lock:                            # the hardware attachments read joints and write targets so
        world.sync()                            # physics first catches up with the wall clock
        q = world.joint_positions()
        world.set_targets(q_goal)
    frame, index = world.frame("front", after=index)   # the next rendered frame (RGB uint8)
    placement = world.reset(seed)               # a new episode's placement
    world.success()

Physics is stepped at the model's timestep up to "now" by whoever touches the world (the hardware on every
read and write, the render thread before each frame), so the arm moves in wall-clock time as a real one does.
A world that falls more than `max_lag_s` behind (a stalled process) skips the rest rather than racing to
catch up: `lag_events` counts those skips.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error
from evo1cli.sim.twin.scene import Placement, Scene, mujoco_module, no_gl


class TwinWorld:
    def __init__(
        self,
        scene: Scene,
        cameras: Mapping[str, tuple[int, int]],
        fps: float = 30.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        max_lag_s: float = 0.25,
    ):
        self.mujoco = mujoco_module()
        unknown = sorted(set(cameras) - set(scene.cameras))
        if unknown:
            raise Evo1Error(
                f"scene {scene.name} has no camera {unknown[0]!r} (its cameras: {', '.join(scene.cameras)})",
                field="cameras",
            )
        self.scene, self.sizes, self.fps, self.clock, self.max_lag_s = scene, dict(cameras), fps, clock, max_lag_s
        self.model = scene.build()
        self.data = self.mujoco.MjData(self.model)
        m = self.model
        self._qpos = np.array([m.jnt_qposadr[m.joint(name).id] for name in scene.joints])
        self._ctrl = np.array([m.actuator(name).id for name in scene.actuators])
        self.lock = threading.RLock()
        self.lag_events = 0
        self.placement: Placement = scene.place(self.model, self.data, seed)
        self._origin = clock() - float(self.data.time)  # wall time at which data.time was 0
        self._frames: dict[str, tuple[np.ndarray, int]] = {}
        self._new_frame = threading.Condition()
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._error: Evo1Error | None = None
        self._thread: threading.Thread | None = None
        self.rendered = 0  # frames rendered so far (per camera)

    # -------------------------------------------------------------------------------------------- physics
    def sync(self) -> None:
        """Step physics until its time reaches the wall clock (at most `max_lag_s` at once)."""
        with self.lock:
            behind = self.clock() - self._origin - float(self.data.time)
            if behind > self.max_lag_s:
                self.lag_events += 1
                self._origin += behind - self.max_lag_s
                behind = self.max_lag_s
            steps = int(behind / self.model.opt.timestep)
            for _ in range(steps):
                self.mujoco.mj_step(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        """(dof,) the robot's joints, MJCF units, the scene's `joints` order."""
        with self.lock:
            return self.data.qpos[self._qpos].copy()

    def set_targets(self, q: np.ndarray) -> None:
        """The position actuators' targets (MJCF units, `joints` order)."""
        with self.lock:
            self.data.ctrl[self._ctrl] = q

    def targets(self) -> np.ndarray:
        with self.lock:
            return self.data.ctrl[self._ctrl].copy()

    def reset(self, seed: int) -> Placement:
        """A new episode: the scene placed by `seed`, the arm at home, the clock restarted at now."""
        with self.lock:
            self.placement = self.scene.place(self.model, self.data, seed)
            self._origin = self.clock() - float(self.data.time)
        return self.placement

    def success(self) -> bool:
        with self.lock:
            self.sync()
            return bool(self.scene.success(self.model, self.data))

    def plan(self, rng: np.random.Generator) -> Any:
        """The scene's scripted pick-and-place from the present state, planned on a copy (the world runs on)."""
        with self.lock:
            self.sync()
            snapshot = copy.copy(self.data)  # MjData's copy is a deep copy of the simulation state
        return self.scene.plan(self.model, snapshot, rng)

    # -------------------------------------------------------------------------------------------- cameras
    def start(self, timeout_s: float = 30.0) -> None:
        """Start the render thread and wait for its first frames (or its one-line failure)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._render_loop, name=f"twin-{self.scene.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise Evo1Error(f"the twin rendered no frame within {timeout_s:g} s", field="--sim")
        if self._error is not None:
            error = self._error
            self.close()
            raise error

    def frame(self, name: str, after: int = -1, timeout_s: float = 1.0) -> tuple[np.ndarray, int] | None:
        """The newest frame of camera `name` once it is newer than index `after` (RGB uint8), or None on
        timeout or once the world is closed."""
        with self._new_frame:
            self._new_frame.wait_for(
                lambda: self._closed.is_set() or self._frames.get(name, (None, -1))[1] > after, timeout_s
            )
            if self._closed.is_set() or name not in self._frames or self._frames[name][1] <= after:
                return None
            return self._frames[name]

    def close(self) -> None:
        self._closed.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _render_loop(self) -> None:
        try:
            renderers = {size: self.mujoco.Renderer(self.model, size[1], size[0]) for size in set(self.sizes.values())}
        except Exception as err:  # no EGL/OSMesa: mujoco raises several types
            self._error = no_gl(err)
            self._ready.set()
            return
        period, index, due = 1.0 / self.fps, 0, self.clock()
        try:
            while not self._closed.is_set():
                frames = {}
                for name, size in self.sizes.items():
                    renderer = renderers[size]
                    with self.lock:
                        self.sync()
                        renderer.update_scene(self.data, camera=self.scene.cameras[name])
                    frames[name] = (renderer.render().copy(), index)
                with self._new_frame:
                    self._frames.update(frames)
                    self.rendered = index + 1
                    self._new_frame.notify_all()
                self._ready.set()
                index += 1
                due = max(due + period, self.clock() - period)
                self._closed.wait(max(0.0, due - self.clock()))
        finally:
            for renderer in renderers.values():
                renderer.close()
