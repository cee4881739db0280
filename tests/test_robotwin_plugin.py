"""The exported RoboTwin plug-in against a stand-in task environment with RoboTwin's API, and evo1 serve."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import yaml
from test_serving import Running, expected

from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.serving.robotwin import export_plugin


class StandInTaskEnv:
    """RoboTwin 2.0's task-environment surface that a policy plug-in touches: get_obs(), get_instruction(),
    take_action(action) with a 14-d joint target, and the observation dict layout."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.cameras = {name: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for name in
                        ("head_camera", "left_camera", "right_camera", "front_camera")}  # fmt: skip
        self.joints = rng.uniform(-1, 1, 14)
        self.taken: list[np.ndarray] = []

    def get_obs(self) -> dict:
        return {
            "observation": {name: {"rgb": image} for name, image in self.cameras.items()},
            "joint_action": {"vector": self.joints.copy()},
        }

    def get_instruction(self) -> str:
        return "place the empty cup on the coaster"

    def take_action(self, action, action_type: str = "qpos") -> None:
        action = np.asarray(action)
        assert action.shape == (14,) and action_type == "qpos"
        self.taken.append(action)


@pytest.fixture(scope="module")
def policy(tiny_config):
    stats = StatsTable()
    joints = FeatureStats(min=-np.ones(14) * 2, max=np.ones(14) * 2)
    stats.add("aloha_joint", "robotwin_place_empty_cup", NormStats(joints, joints))
    return Evo1Model.build(tiny_config.replace(num_inference_steps=3), stats=stats).eval()


def load_plugin(folder):
    spec = importlib.util.spec_from_file_location("evo1_robotwin_deploy", folder / "deploy_policy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_round_trip(policy, tmp_path):
    server = Running(policy)
    try:
        folder = export_plugin(tmp_path / "evo1", server_url=server.url)
        assert sorted(p.name for p in folder.iterdir()) == [
            "README.md", "deploy_policy.py", "deploy_policy.yml", "eval.sh", "evo1_client"
        ]  # fmt: skip
        usr_args = yaml.safe_load((folder / "deploy_policy.yml").read_text())
        usr_args.update(task_name="place_empty_cup", task_config="demo_clean", ckpt_setting="evo1")
        plugin = load_plugin(folder)
        model = plugin.get_model(usr_args)
        env = StandInTaskEnv()
        plugin.eval(env, model, env.get_obs())
        assert len(env.taken) == 37  # the authors' RoboTwin execution horizon
        images = [env.cameras[n] for n in ("head_camera", "left_camera", "right_camera")]
        chunk = expected(policy, images, env.joints.astype(np.float32), env.get_instruction())
        smoothed = plugin.gaussian_smooth(chunk.astype(np.float64), 9)
        assert np.allclose(np.stack(env.taken), smoothed[:37], atol=1e-5)
        plugin.eval(env, model, env.get_obs())  # the next call asks for a fresh chunk
        assert len(env.taken) == 74 and server.server.stats.requests >= 2
        plugin.reset_model(model)
    finally:
        server.stop()


def test_gaussian_smoothing(tmp_path):
    plugin = load_plugin(export_plugin(tmp_path / "plugin"))
    ramp = np.linspace(0, 1, 50)[:, None].repeat(2, axis=1)
    assert np.allclose(plugin.gaussian_smooth(ramp, 9)[5:-5], ramp[5:-5])  # a symmetric kernel keeps lines
    step = np.zeros((50, 1))
    step[25:] = 1.0
    smooth = plugin.gaussian_smooth(step, 9)[:, 0]
    assert 0 < smooth[24] < 0.5 < smooth[25] < 1
    assert np.isclose(smooth[0], 0) and np.isclose(smooth[-1], 1)
    assert np.array_equal(plugin.gaussian_smooth(step, 1), step)


def test_cli_export(tmp_path):
    out = tmp_path / "plugin"
    result = subprocess.run([sys.executable, "-m", "evo1cli", "bench", "robotwin", "--export-plugin", str(out),
                             "--server-url", "ws://gpu-box:9000"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((out / "deploy_policy.yml").read_text())["server_url"] == "ws://gpu-box:9000"
    again = subprocess.run([sys.executable, "-m", "evo1cli", "bench", "robotwin", "--export-plugin", str(out)],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    bare = subprocess.run([sys.executable, "-m", "evo1cli", "bench", "robotwin"], capture_output=True, text=True)
    assert bare.returncode == 1 and "GPU renderer" in bare.stderr
