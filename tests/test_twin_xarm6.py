"""The xArm6 twin: the MJCF arm against UFACTORY's kinematics, the scene, the scripted expert, and the real
driver over `TwinXArmAPI`."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # headless, before mujoco is imported
mujoco = pytest.importorskip("mujoco")

from evo1cli.robots.config import default_config_path, load_robot_config  # noqa: E402
from evo1cli.robots.fakes.twin_xarm6 import TwinXArmAPI, attach  # noqa: E402
from evo1cli.robots.xarm6 import XArm6  # noqa: E402
from evo1cli.sim.twin import open_scene  # noqa: E402
from evo1cli.sim.twin.scene import Trajectory  # noqa: E402
from evo1cli.sim.twin.world import TwinWorld  # noqa: E402
from evo1cli.sim.twin.xarm6 import BOWL_FLOOR, BOWL_POS, CUBE_HALF, FINGER_OPEN, CubeBowl  # noqa: E402
from evo1cli.sim.twin.xarm6_kinematics import xarm6_forward_kinematics  # noqa: E402

CONFIG = load_robot_config(default_config_path("xarm6"), ["connection.fake=true"])
TICK = 1 / 30


@pytest.fixture(scope="module")
def scene() -> CubeBowl:
    return CubeBowl()


@pytest.fixture(scope="module")
def model(scene):
    return scene.build()


def arm_qpos(model, scene) -> list[int]:
    return [model.jnt_qposadr[model.joint(n).id] for n in scene.joints]


def run(model, data, scene, plan: Trajectory, until: float) -> None:
    ctrl = [model.actuator(n).id for n in scene.actuators]
    while data.time < until:
        data.ctrl[ctrl] = plan.at(data.time)
        mujoco.mj_step(model, data)


@pytest.mark.parametrize(
    "joints", [(0, 0, 0, 0, 0, 0), (0, -20, -40, 0, 60, 0), (30, 10, -60, 45, 30, -20), (-90, 40, -100, 120, -30, 200)]
)
def test_mjcf_flange_matches_ufactory_kinematics(scene, model, joints):
    data = mujoco.MjData(model)
    data.qpos[arm_qpos(model, scene)[:6]] = np.radians(joints)
    mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(data.body("link6").xpos * 1000, xarm6_forward_kinematics(joints)[:3], atol=2.0)


def test_scene_builds_with_its_contract(scene, model):
    assert open_scene("xarm6").name == scene.name == "xarm6-cube-bowl"
    assert len(scene.joints) == len(scene.actuators) == len(scene.home) == 7
    for name in scene.cameras.values():
        model.camera(name)
    assert model.vis.global_.offwidth >= 640 and model.vis.global_.offheight >= 480
    data = mujoco.MjData(model)
    scene.place(model, data, 0)
    np.testing.assert_allclose(data.qpos[arm_qpos(model, scene)], scene.home)
    np.testing.assert_allclose(data.body("link6").xpos * 1000, [364.3, 0, 351.5], atol=0.5)  # the config's home
    tcp = data.site("tcp")
    assert tcp.xmat.reshape(3, 3)[2, 2] < -0.999  # the gripper points down at home
    lo, hi = np.array(CONFIG.limits.workspace_lower), np.array(CONFIG.limits.workspace_upper)
    grasp_flange_z = (CUBE_HALF + 0.172) * 1000  # the flange while the fingers hold the cube on the table
    assert lo[2] + 20 < grasp_flange_z and np.all(data.body("link6").xpos * 1000 < hi)


def test_placements_are_reproducible_per_seed(scene, model):
    a, b = mujoco.MjData(model), mujoco.MjData(model)
    first, again, other = scene.place(model, a, 5), scene.place(model, b, 5), scene.place(model, b, 6)
    assert first == again and first.cube != other.cube and first.container == other.container
    assert not scene.success(model, a)


def test_success_needs_the_cube_resting_in_the_bowl_and_let_go(scene, model):
    data = mujoco.MjData(model)
    scene.place(model, data, 1)
    cube = model.jnt_qposadr[model.joint("cube").id]
    data.qpos[cube : cube + 3] = [BOWL_POS[0] + 0.01, BOWL_POS[1] - 0.01, BOWL_FLOOR + CUBE_HALF + 0.002]
    for _ in range(300):
        mujoco.mj_step(model, data)
    assert scene.success(model, data)
    # Held above the bowl by the expert, just before it lets go: not a success.
    placement = scene.place(model, data, 2)
    plan = scene.plan(model, data, np.random.default_rng(2))
    run(model, data, scene, plan, plan.events["release"] - 0.7)
    assert data.body("cube").xpos[2] > placement.cube[2] + 0.01 and not scene.success(model, data)


def test_plan_stays_within_the_safety_layers_speed_limits(scene, model):
    data = mujoco.MjData(model)
    limit = np.array(CONFIG.limits.max_step) * 0.7
    for seed in range(5):
        scene.place(model, data, seed)
        plan = scene.plan(model, data, np.random.default_rng(seed))
        ticks = np.array([plan.at(t) for t in np.arange(0, plan.duration + TICK, TICK)])
        hardware = np.column_stack([np.degrees(ticks[:, :6]), ticks[:, 6] / FINGER_OPEN * 850])
        assert np.all(np.abs(np.diff(hardware, axis=0)) <= limit + 1e-6), seed
        assert set(plan.events) == {"grasp", "release"} and plan.duration < scene.episode_s
        np.testing.assert_allclose(plan.points[-1], scene.home, atol=1e-9)


@pytest.mark.slow
def test_scripted_expert_succeeds(scene, model):
    data = mujoco.MjData(model)
    wins = 0
    for seed in range(20):
        scene.place(model, data, seed)
        plan = scene.plan(model, data, np.random.default_rng(seed))
        run(model, data, scene, plan, plan.duration + 1.0)
        wins += scene.success(model, data)
    assert wins >= 19


# ---------------------------------------------------------------------------------------------- the driver
class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def twin(scene):
    clock = Clock()
    world = TwinWorld(scene, {}, clock=clock)
    hardware = attach(world, CONFIG)
    arm = XArm6(CONFIG, api_factory=hardware.follower)
    arm.connect()
    yield arm, world, hardware, clock
    arm.disconnect()


def advance(arm, clock, seconds: float, target=None) -> np.ndarray:
    """Run the 30 Hz loop for `seconds` (streaming `target` if given); the last reading."""
    for _ in range(round(seconds / TICK)):
        clock.now += TICK
        if target is not None:
            arm.send_joints(np.asarray(target, dtype=float))
        joints = arm.read_joints()
    return joints


def test_driver_reads_the_twins_joints_in_degrees(twin):
    arm, world, _hardware, clock = twin
    assert isinstance(arm.api, TwinXArmAPI)
    joints = advance(arm, clock, 0.2)
    np.testing.assert_allclose(joints, CONFIG.home, atol=0.3)
    assert isinstance(arm.api.get_gripper_position()[1], int)
    np.testing.assert_allclose(arm.forward_kinematics(joints), world.data.body("link6").xpos * 1000, atol=5)


def test_servo_commands_move_the_twin_and_the_gripper_reports_pulses(twin):
    arm, world, _hardware, clock = twin
    target = np.array([20, -10, -50, 10, 70, -15, 0], dtype=float)
    joints = advance(arm, clock, 1.0, target)
    np.testing.assert_allclose(joints[:6], target[:6], atol=0.5)
    np.testing.assert_allclose(np.degrees(world.joint_positions()[:6]), target[:6], atol=0.5)
    assert 0 <= joints[6] <= 10  # closed on nothing
    joints = advance(arm, clock, 1.0, [*target[:6], 850])
    assert 840 <= joints[6] <= 850


def test_the_gripper_reads_within_the_real_grippers_range(twin):
    # Pushed open, the twin's fingers overshoot their travel for a moment; a real xArm Gripper reports -10..850.
    arm, world, _hardware, _clock = twin
    with world.lock:
        world.data.qpos[world._qpos[6]] = 1.1 * world.scene.home[-1]
    assert arm.api.pulses(world.joint_positions()[6]) > 900
    assert arm.api.get_gripper_position()[1] == 850 and arm.api.gripper_position == 850
    assert arm.read_joints()[6] == 850


def test_wait_true_moves_the_twin_through_the_skipped_time(twin):
    arm, world, _hardware, clock = twin
    advance(arm, clock, 1.0, [10, -30, -30, 0, 50, 10, 400])
    arm.home()  # a planned move with wait=True: simulated time skips, physics runs through it
    np.testing.assert_allclose(arm.read_joints(), CONFIG.home, atol=0.5)
    assert world.lag_events == 0


def test_teach_mode_follows_the_guiding_hand(twin, scene):
    arm, _world, hardware, clock = twin
    home = np.array(scene.home)
    goal = home + np.array([*np.radians([25, 10, -15, 0, 10, 30]), -FINGER_OPEN / 2])
    hand = Trajectory(times=np.array([0.0, 1.5]), points=np.array([home, goal]))
    hardware.guide(hand, None)
    advance(arm, clock, 0.5)
    np.testing.assert_allclose(arm.read_joints(), CONFIG.home, atol=0.3)  # servo mode: it holds against the hand
    arm.teach_mode(True)
    hardware.guide(hand, None)
    halfway = advance(arm, clock, 0.75)
    assert 5 < halfway[0] < 20
    joints = advance(arm, clock, 1.5)
    np.testing.assert_allclose(joints[:6], np.degrees(goal[:6]), atol=0.5)
    assert abs(joints[6] - 850) < 15  # a hand does not move the motor-driven gripper (teach mode's `g` does)
    hardware.guide(None, home)
    joints = advance(arm, clock, 1.5)
    np.testing.assert_allclose(joints[:6], CONFIG.home[:6], atol=0.5)
    arm.teach_mode(False)


def test_a_tick_and_two_renders_are_cheap(scene, model):
    data = mujoco.MjData(model)
    scene.place(model, data, 3)
    try:
        renderer = mujoco.Renderer(model, 224, 224)
    except Exception as err:  # no headless OpenGL here
        pytest.skip(f"no offscreen rendering: {err}")
    steps = math.ceil(TICK / model.opt.timestep)
    costs = []
    try:
        for _ in range(40):
            start = time.perf_counter()
            for _ in range(steps):
                mujoco.mj_step(model, data)
            for camera in scene.cameras.values():
                renderer.update_scene(data, camera=camera)
                frame = renderer.render()
            costs.append(time.perf_counter() - start)
    finally:
        renderer.close()
    cost_ms = 1000 * float(np.median(costs[5:]))
    print(f"xarm6 twin: physics tick + two 224x224 renders {cost_ms:.1f} ms")
    assert frame.shape == (224, 224, 3) and frame.std() > 5
    assert cost_ms < 60


@pytest.mark.slow
def test_the_expert_through_the_driver_and_the_safety_layer(scene):
    """The scripted plan streamed at 30 Hz in hardware units through SafetyLayer -> XArm6 -> TwinXArmAPI: the
    safety layer never intervenes (speeds, workspace box) and the cube lands in the bowl."""
    from evo1cli.robots.safety import SafetyLayer

    clock = Clock()
    world = TwinWorld(scene, {}, clock=clock)
    arm = XArm6(CONFIG, api_factory=attach(world, CONFIG).follower)
    arm.connect()
    safety = SafetyLayer(arm, CONFIG, clock=clock)
    safety.start()
    try:
        for seed in (0, 1, 2):
            world.reset(seed)
            plan = world.plan(np.random.default_rng(seed))
            start = clock.now
            while clock.now - start < plan.duration + 1.0:
                q = plan.at(clock.now - start)
                safety.command(np.array([*np.degrees(q[:6]), q[6] / FINGER_OPEN * 850]))
                clock.now += TICK
                arm.read_joints()
            assert world.success(), seed
        assert not any(safety.counts.values()), safety.counts
    finally:
        safety.close()
        arm.disconnect()
