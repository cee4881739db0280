"""evo1cli.sim.libero: pure helpers (always), and one real LIBERO-Long task headless (slow, needs the package)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from evo1cli.errors import Evo1Error
from evo1cli.sim import libero
from evo1cli.sim.libero import (
    ACTION_DIM,
    CAMERAS,
    SETTLE_STEPS,
    STATE_DIM,
    LiberoEnv,
    binarize_gripper,
    quat_to_axis_angle,
    rotate_180,
    state_vector,
)


def quat(axis, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return np.array([*(axis * math.sin(angle / 2)), math.cos(angle / 2)])


def robosuite_formula(q: np.ndarray) -> np.ndarray:
    """robosuite.utils.transform_utils.quat2axisangle, which the authors' client uses (without the mutation)."""
    w = min(max(q[3], -1.0), 1.0)
    den = math.sqrt(1.0 - w * w)
    return np.zeros(3) if math.isclose(den, 0.0) else q[:3] * 2.0 * math.acos(w) / den


# ------------------------------------------------------------------------------------------- quaternions
def test_identity_is_zero():
    np.testing.assert_array_equal(quat_to_axis_angle(np.array([0.0, 0.0, 0.0, 1.0])), np.zeros(3))
    np.testing.assert_array_equal(quat_to_axis_angle(np.array([0.0, 0.0, 0.0, -1.0])), np.zeros(3))  # 360 degrees


def test_known_rotations():
    np.testing.assert_allclose(quat_to_axis_angle(quat([0, 0, 1], math.pi / 2)), [0, 0, math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(quat_to_axis_angle(np.array([1.0, 0.0, 0.0, 0.0])), [math.pi, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quat_to_axis_angle(quat([0, 1, 0], -0.3)), [0, -0.3, 0], atol=1e-12)


def test_tiny_angles_keep_their_precision():
    np.testing.assert_allclose(quat_to_axis_angle(quat([1, 2, 2], 1e-9)), np.array([1, 2, 2]) / 3 * 1e-9, rtol=1e-9)


def test_random_rotations_convert_back_and_match_robosuite():
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        v = quat_to_axis_angle(q)
        angle = np.linalg.norm(v)
        np.testing.assert_allclose(quat(v, angle), q, atol=1e-12)  # same sign: w < 0 gives an angle above pi
        np.testing.assert_allclose(v, robosuite_formula(q), atol=1e-9)
        np.testing.assert_allclose(quat_to_axis_angle(3.0 * q), v, atol=1e-12)  # scale-free


def test_input_is_not_modified():
    q = np.array([0.0, 0.0, 0.0, 1.5])  # robosuite's own function clips w in place
    quat_to_axis_angle(q)
    assert q[3] == 1.5


# --------------------------------------------------------------------------------------------- actions
def test_gripper_binarisation():
    arm = [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]
    for gripper, expected in [(0.7, -1.0), (0.2, 1.0), (0.5, 1.0), (0.5000001, -1.0), (-3.0, 1.0), (9.0, -1.0)]:
        out = binarize_gripper(np.array([*arm, gripper, 42.0], dtype=np.float32))
        assert out.shape == (ACTION_DIM,) and out.dtype == np.float64
        np.testing.assert_array_equal(out[:6], np.array(arm, dtype=np.float32))
        assert out[6] == expected


def test_gripper_nan_closes_like_the_authors_comparison():
    assert binarize_gripper([0, 0, 0, 0, 0, 0, float("nan")])[6] == 1.0


def test_binarisation_copies_and_rejects_short_actions():
    action = np.array([0.0] * 6 + [0.9])
    binarize_gripper(action)
    assert action[6] == 0.9
    with pytest.raises(Evo1Error, match="action"):
        binarize_gripper(np.zeros(4))


# ---------------------------------------------------------------------------------------- observations
def fake_raw(size: int = 4) -> dict[str, np.ndarray]:
    images = {
        camera: np.arange(size * size * 3, dtype=np.uint8).reshape(size, size, 3) + i
        for i, camera in enumerate(CAMERAS)
    }
    return {
        **images,
        "robot0_eef_pos": np.array([0.1, 0.2, 0.3]),
        "robot0_eef_quat": quat([0, 0, 1], math.pi / 2),
        "robot0_gripper_qpos": np.array([0.04, -0.04]),
    }


def test_rotation_and_state_vector():
    raw = fake_raw()
    image = raw[CAMERAS[0]]
    turned = rotate_180(image)
    assert turned.flags["C_CONTIGUOUS"] and turned[0, 0].tolist() == image[-1, -1].tolist()
    np.testing.assert_array_equal(rotate_180(turned), image)
    state = state_vector(raw)
    assert state.shape == (STATE_DIM,) and state.dtype == np.float32
    np.testing.assert_allclose(state, [0.1, 0.2, 0.3, 0, 0, math.pi / 2, 0.04, -0.04], atol=1e-6)


class FakeEnv:
    """What LiberoEnv needs of OffScreenRenderEnv: step returns (obs, reward, done = success, info)."""

    def __init__(self, succeed_at: int):
        self.actions: list[np.ndarray] = []
        self.succeed_at = succeed_at

    def step(self, action):
        self.actions.append(np.array(action))
        return fake_raw(), 0.0, len(self.actions) >= self.succeed_at, {}


def fake_env(max_steps: int, succeed_at: int = 10**6) -> LiberoEnv:
    env = object.__new__(LiberoEnv)
    env.env, env.raw, env.steps, env.max_steps = FakeEnv(succeed_at), fake_raw(), 0, max_steps
    return env


def test_step_counts_and_stops_at_the_budget():
    env = fake_env(max_steps=3)
    assert [env.step(np.array([0.0] * 6 + [0.8])) for _ in range(3)] == [(False, False), (False, False), (False, True)]
    assert env.steps == 3 and env.env.actions[0][6] == -1.0


def test_step_reports_success_as_done():
    env = fake_env(max_steps=100, succeed_at=2)
    assert env.step(np.zeros(7)) == (False, False)
    assert env.step(np.zeros(7)) == (True, True)


def test_non_finite_arm_actions_raise():
    env = fake_env(max_steps=100)
    with pytest.raises(Evo1Error, match="action: non-finite"):
        env.step(np.array([np.nan] + [0.0] * 6))
    assert env.steps == 0 and not env.env.actions


def test_observation_before_reset_raises():
    env = fake_env(max_steps=1)
    env.raw = None
    with pytest.raises(Evo1Error, match="reset"):
        env.observation()


# -------------------------------------------------------------------------------------------- arguments
def test_unknown_suite():
    with pytest.raises(Evo1Error, match=r"^suite: unknown LIBERO suite 'libero-90'"):
        LiberoEnv("libero-90", 0, 0)
    with pytest.raises(Evo1Error, match="suite"):
        libero.suite_tasks("libero_10")  # the package's key, not ours


@pytest.mark.parametrize("task_id", [-1, 10])
def test_task_id_out_of_range(task_id):
    with pytest.raises(Evo1Error, match=rf"^task_id: libero-long has tasks 0..9, got {task_id}"):
        LiberoEnv("libero-long", task_id, 0)


def test_negative_episode():
    with pytest.raises(Evo1Error, match=r"^episode:"):
        LiberoEnv("libero-spatial", 0, -1)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "libero", None)  # import libero -> ImportError
    libero._task_suite.cache_clear()
    try:
        with pytest.raises(Evo1Error, match=r"LIBERO is not importable .*pip install 'evo1cli\[libero\]'"):
            libero.num_tasks("libero-goal")
    finally:
        libero._task_suite.cache_clear()


def test_constants():
    assert set(libero.SUITES) == set(libero.MAX_STEPS)
    assert libero.MAX_STEPS == {"libero-spatial": 220, "libero-object": 280, "libero-goal": 300, "libero-long": 520}
    assert (SETTLE_STEPS, STATE_DIM, ACTION_DIM) == (10, 8, 7)
    from evo1cli.bench.libero import PROTOCOL  # the authors' evaluation protocol

    assert (PROTOCOL.episodes, PROTOCOL.seed, PROTOCOL.action_steps, PROTOCOL.max_steps) == (50, 7, 14, None)
    assert PROTOCOL.settle_steps == SETTLE_STEPS


# ------------------------------------------------------------------------------------ real LIBERO (slow)
SIZE = 64
FIRST: dict[str, np.ndarray] = {}  # the observation after the fixture's reset


@pytest.fixture(scope="module")
def long_env():
    pytest.importorskip("libero.libero", reason="LIBERO is not installed: pip install 'evo1cli[libero]'")
    env = LiberoEnv("libero-long", task_id=0, episode=0, image_size=SIZE)
    env.reset()
    FIRST.update(env.raw)
    yield env
    env.close()


@pytest.mark.slow
def test_suites_list_their_tasks(long_env):
    for suite in libero.SUITES:
        names = libero.suite_tasks(suite)
        assert len(names) == libero.num_tasks(suite) == 10 and len(set(names)) == 10
    assert long_env.task == libero.suite_tasks("libero-long")[0]
    assert long_env.prompt == "put both the alphabet soup and the tomato sauce in the basket"
    assert long_env.max_steps == 520 and len(long_env.init_states) == 50


@pytest.mark.slow
def test_reset_settles_and_observes(long_env):
    assert long_env.steps == 0
    assert long_env.env.env.timestep == SETTLE_STEPS  # robosuite counted the settle steps; we do not
    images, state = long_env.observation()
    raw = long_env.raw
    assert len(images) == 2
    for image, camera in zip(images, CAMERAS, strict=True):
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(image, raw[camera][::-1, ::-1])
        assert image.std() > 1  # a rendered scene, not a blank buffer
    np.testing.assert_array_equal(long_env.frame(), images[0])
    assert state.shape == (STATE_DIM,) and state.dtype == np.float32 and np.isfinite(state).all()
    np.testing.assert_array_equal(state[:3], raw["robot0_eef_pos"].astype(np.float32))
    np.testing.assert_allclose(state[3:6], robosuite_formula(raw["robot0_eef_quat"]), atol=1e-5)
    np.testing.assert_array_equal(state[6:], raw["robot0_gripper_qpos"].astype(np.float32))
    assert state[6] > 0.035  # the settle action opened the gripper


@pytest.mark.slow
def test_steps_count_and_the_budget_ends_the_episode(long_env):
    _, before = long_env.observation()
    hold = np.array([0.0] * 6 + [1.0])  # 1.0 > 0.5: keep the gripper open
    for k in range(3):
        assert long_env.step(hold) == (False, False)
        assert long_env.steps == k + 1
    _, after = long_env.observation()
    np.testing.assert_allclose(after[:3], before[:3], atol=0.01)  # a zero delta keeps the arm in place
    long_env.max_steps = 5
    assert long_env.step(hold) == (False, False)
    assert long_env.step(hold) == (False, True)
    long_env.max_steps = libero.MAX_STEPS["libero-long"]


@pytest.mark.slow
def test_reset_to_another_episode(long_env):
    long_env.reset(episode=51)  # init state 1
    assert long_env.episode == 51 and long_env.steps == 0 and long_env.env.env.timestep == SETTLE_STEPS
    assert not np.array_equal(long_env.raw["alphabet_soup_1_pos"], FIRST["alphabet_soup_1_pos"])
    assert not np.array_equal(long_env.frame(), rotate_180(FIRST[CAMERAS[0]]))


# --------------------------------------------------------------------------- evo1 bench libero-* (wiring)
FAKE_NAMES = {suite: [f"{suite.split('-')[1]}_task_{i}" for i in range(10)] for suite in libero.SUITES}


@pytest.fixture
def fake_suites(monkeypatch):
    from evo1cli.bench import libero as bench_libero

    monkeypatch.setattr(bench_libero, "suite_tasks", lambda suite: FAKE_NAMES[suite])
    return bench_libero


def test_bench_suites_and_task_selection(fake_suites):
    assert fake_suites.suite_names("libero") == list(libero.SUITES)
    assert fake_suites.suite_names("libero-goal") == ["libero-goal"]
    with pytest.raises(Evo1Error, match=r"^suite: unknown suite 'libero-90'"):
        fake_suites.suite_names("libero-90")
    one = ["libero-long"]
    assert fake_suites.resolve_tasks(one, "all") == FAKE_NAMES["libero-long"]
    assert fake_suites.resolve_tasks(one, "3, long_task_1,3") == ["long_task_3", "long_task_1"]
    # an index picks that task of every selected suite; the level of a task is its suite
    both = ["libero-spatial", "libero-goal"]
    assert fake_suites.resolve_tasks(both, "0") == ["spatial_task_0", "goal_task_0"]
    assert fake_suites.levels(both)["goal_task_9"] == "libero-goal"
    for bad, message in (("10", "task index 10 is not in 0..9"), ("nope", "unknown task 'nope'")):
        with pytest.raises(Evo1Error, match=rf"^--tasks: {message}"):
            fake_suites.resolve_tasks(one, bad)


def test_bench_episodes_reset_init_state_k_with_seed_plus_k(fake_suites, monkeypatch):
    from evo1cli.bench.harness import BenchProtocol

    made = []

    class Recorder:
        def __init__(self, suite, task_id, episode, image_size, seed, settle_steps):
            made.append(self)
            self.args = (suite, task_id, image_size, seed, settle_steps)
            self.max_steps, self.init_states, self.resets, self.closed = 520, [None] * 50, [], False

        def reset(self, episode=None):
            self.resets.append(episode)

        def close(self):
            self.closed = True

    monkeypatch.setattr(fake_suites, "LiberoEnv", Recorder)
    spec = BenchProtocol("libero", 3, 7, 14, 64, 0, 30, None, {"suites": ["libero-long"], "settle_steps": 4})
    out = [(k, seed, extra) for k, seed, _, extra in fake_suites.episodes("long_task_2", spec)]
    assert [(k, seed) for k, seed, _ in out] == [(0, 7), (1, 8), (2, 9)]
    assert [e["init_state"] for *_, e in out] == [0, 1, 2] and out[0][2]["suite"] == "libero-long"
    (env,) = made
    assert env.args == ("libero-long", 2, 64, 7, 4) and env.resets == [0, 1, 2] and env.closed
    assert env.max_steps == 30  # --max-steps replaces the suite's budget


@pytest.mark.slow
def test_bench_libero_long_smoke_headless(tmp_path):
    """`evo1 bench libero-long` end to end on a real task with a tiny random policy: protocol, budget, report."""
    pytest.importorskip("libero.libero", reason="LIBERO is not installed: pip install 'evo1cli[libero]'")
    import json
    import subprocess
    import sys

    from evo1cli.model.checkpoint import save_policy
    from evo1cli.model.config import Evo1Config
    from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model

    stats = StatsTable()
    state = FeatureStats(min=np.full(STATE_DIM, -1.0), max=np.full(STATE_DIM, 1.0))
    stats.add("franka", "libero_10", NormStats(state, FeatureStats(min=-np.ones(7), max=np.ones(7))))
    config = Evo1Config.preset("tiny", image_size=64)
    save_policy(Evo1Model.build(config, stats=stats).eval(), tmp_path / "ckpt")
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "evo1cli", "bench", "libero-long", "-c", str(tmp_path / "ckpt"), "--tasks", "0",
           "--episodes", "2", "--max-steps", "20", "--videos", "1", "--out", str(out), "--json"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert json.loads(result.stdout)["overall"] == info["overall"]
    protocol = info["protocol"]
    assert (protocol["action_steps"], protocol["max_steps"], protocol["settle_steps"]) == (14, 20, 10)
    assert protocol["suites"] == ["libero-long"] and protocol["image_size"] == 64
    task = libero.suite_tasks("libero-long")[0]
    assert list(info["tasks"]) == [task] and info["tasks"][task]["level"] == "libero-long"
    episodes = info["episodes"]
    assert [(e["episode"], e["seed"], e["extra"]["init_state"]) for e in episodes] == [(0, 7, 0), (1, 8, 1)]
    for e in episodes:  # a random policy does not solve it: the budget ends it after ceil(20 / 14) queries
        assert (e["success"], e["steps"], e["queries"]) == (False, 20, 2)
    assert episodes[0]["video"] and (out / "videos").is_dir() and episodes[1]["video"] is None
    assert (out / "report.html").is_file() and (out / "success.png").is_file()
