"""`evo1 bench`: the harness (chunks, budgets, batching, seeds), the Meta-World protocol, the report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evo1cli.bench.evaluate import evaluate, summarize
from evo1cli.bench.harness import BenchProtocol, EpisodeRecord, run_benchmark, write_mp4
from evo1cli.bench.report import write_report
from evo1cli.errors import Evo1Error

STEPS_TO_SOLVE = {"a": 7, "b": 1000}  # task "a" is solved after 7 steps; "b" never


class CountingEnv:
    """A stand-in simulator: records every action it is given; solved after STEPS_TO_SOLVE[task] steps."""

    def __init__(self, task: str, max_steps: int):
        self.task, self.prompt, self.max_steps = task, f"do {task}", max_steps
        self.actions: list[np.ndarray] = []

    def observation(self):
        return [np.full((8, 8, 3), len(self.actions), np.uint8)], np.array([len(self.actions)], np.float32)

    def step(self, action):
        self.actions.append(np.asarray(action))
        success = len(self.actions) >= STEPS_TO_SOLVE[self.task]
        return success, success

    def frame(self):
        return np.zeros((16, 16, 3), np.uint8)

    def expert_action(self):
        return np.array([1.0])


def counting_episodes(task, spec):
    for k in range(spec.episodes):
        env = CountingEnv(task, spec.max_steps or 20)
        yield k, spec.seed + k, env, {"actions_seen": env.actions}


class ChunkPolicy:
    """Chunks of 5 actions whose values say which query they answer."""

    def infer(self, queries):
        return [np.stack([np.full(1, 100 * q.index + i, np.float32) for i in range(5)]) for q in queries]


chunk_policy = ChunkPolicy()


def spec(**changes):
    values = dict(suite="test", episodes=2, seed=10, action_steps=3, image_size=8, videos=0, max_steps=20,
                  video_dir=None)  # fmt: skip
    values.update(changes)
    return BenchProtocol(**values)


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_are_cut_to_action_steps_and_episodes_stop_on_success_or_budget(workers):
    records = run_benchmark(["a", "b"], counting_episodes, spec(), chunk_policy, workers=workers)
    by_task = {}
    for r in records:
        by_task.setdefault(r.task, []).append(r)
    a, b = by_task["a"], by_task["b"]
    assert [r.episode for r in sorted(a, key=lambda r: r.episode)] == [0, 1]
    assert all(r.success and r.steps == 7 and r.queries == 3 for r in a)  # 3 + 3 + 1 actions
    assert all(not r.success and r.steps == 20 and r.queries == 7 for r in b)  # 20 = 6 x 3 + 2
    assert sorted(r.seed for r in a) == [10, 11]


def test_expert_mode_acts_one_step_per_query():
    records = run_benchmark(["a"], counting_episodes, spec(episodes=1), None)
    assert records[0].success and records[0].steps == 7 and records[0].queries == 7


def test_videos_are_h264_mp4_of_every_frame(tmp_path):
    records = run_benchmark(["a"], counting_episodes, spec(videos=1, video_dir=str(tmp_path)), chunk_policy)
    filmed = [r for r in records if r.video]
    assert [r.episode for r in filmed] == [0]
    import av

    with av.open(filmed[0].video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 1 + 7  # the first frame, then one per step


def test_write_mp4_is_atomic(tmp_path):
    write_mp4(tmp_path / "v.mp4", [np.zeros((9, 11, 3), np.uint8)] * 3)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_summary_and_report_schema(tmp_path):
    records = [
        EpisodeRecord("reach-v3", 0, 4042, True, 50, 4, 1.0),
        EpisodeRecord("reach-v3", 1, 4043, False, 400, 27, 2.0),
        EpisodeRecord("push-v3", 0, 4042, True, 80, 6, 1.0),
        EpisodeRecord("push-v3", 1, 4043, True, 90, 6, 1.0),
    ]
    levels = {"reach-v3": "easy", "push-v3": "hard"}
    summary = summarize(records, levels)
    assert summary["tasks"]["reach-v3"] == {
        "level": "easy", "episodes": 2, "successes": 1, "success_rate": 0.5, "mean_steps": 225.0
    }  # fmt: skip
    assert summary["levels"] == {"easy": {"tasks": 1, "success_rate": 0.5}, "hard": {"tasks": 1, "success_rate": 1.0}}
    assert summary["overall"] == {"episodes": 4, "successes": 3, "mean_over_tasks": 0.75, "mean_over_levels": 0.75}

    from evo1cli.bench.evaluate import eval_info

    info = eval_info("metaworld", spec(options={"variations": "authors"}), "expert", records, levels, 3.0)
    paths = write_report(info, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert set(saved) >= {"suite", "policy", "protocol", "tasks", "levels", "overall", "episodes", "seconds"}
    assert saved["protocol"] == {"suite": "test", "episodes": 2, "seed": 10, "action_steps": 3, "image_size": 8,
                                 "videos": 0, "max_steps": 20, "variations": "authors"}  # fmt: skip
    assert saved["episodes"][1]["success"] is False and saved["episodes"][1]["steps"] == 400
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    assert "reach-v3" in page and "success.png" in page and "75.0 %" in page


# ---------------------------------------------------------------------------------------------- Meta-World
def test_metaworld_protocol_slices_state_clips_actions_and_crops_the_camera():
    from evo1cli.bench.metaworld import MetaWorldBenchEnv
    from evo1cli.sim.metaworld import MetaWorldEnv

    env = MetaWorldEnv("reach-v3", 3, 5, image_size=64)
    bench = MetaWorldBenchEnv(env, 400)
    try:
        bench.start(None)
        (image,), state = bench.observation()
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(state, bench.obs[:8].astype(np.float32))
        raw = env.env.render()  # 480x480, as rendered
        turned = raw[::-1, ::-1]
        crop = turned[80:400, 80:400]  # the centre 2/3 of the turned frame
        import cv2

        resized = cv2.resize(np.ascontiguousarray(crop), (64, 64), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(image, resized)
        before = bench.obs[:3].copy()
        bench.step(np.array([50.0, 0, 0, 0, 99.0]))  # clipped to [-1, 1]; the 5th dim is ignored
        moved_big = bench.obs[:3] - before
        env2 = MetaWorldBenchEnv(MetaWorldEnv("reach-v3", 3, 5, image_size=64), 400)
        env2.start(None)
        env2.step(np.array([1.0, 0, 0, 0]))
        np.testing.assert_allclose(moved_big, env2.obs[:3] - before, atol=1e-9)
        env2.env.close()
    finally:
        env.close()


def test_authors_variations_follow_the_envs_rng(tmp_path, monkeypatch):
    from evo1cli.bench import metaworld as bench_mw
    from evo1cli.sim import metaworld as sim_mw
    from evo1cli.sim.metaworld import MetaWorldEnv

    fake = {"reach-v3": [f"v{i}" for i in range(50)]}
    monkeypatch.setattr(sim_mw, "mt50_variations", lambda seed: fake)
    drawn = []
    monkeypatch.setattr(MetaWorldEnv, "__init__", lambda self, *a, **k: _fake_env_init(self, drawn, *a, **k))
    monkeypatch.setattr(MetaWorldEnv, "reset", lambda self, seed=None: (drawn.append(("reset", seed)), np.zeros(39))[1])
    step = lambda self, a: (drawn.append(("step", a.tolist())), (np.ones(39), False, False))[1]  # noqa: E731
    monkeypatch.setattr(MetaWorldEnv, "step", step)
    monkeypatch.setattr(MetaWorldEnv, "close", lambda self: None)
    monkeypatch.setattr(sim_mw, "ScriptedExpert", lambda task: None)
    s = spec(episodes=3, seed=4042, options={"variations": "authors"})
    got = [(k, seed, extra["variation"]) for k, seed, _, extra in bench_mw.episodes("reach-v3", s)]
    expected_rng = np.random.default_rng(4042)  # what env.seed(4042) gives the fake's np_random
    expected = [int(expected_rng.choice(50)) for _ in range(3)]
    assert got == [(0, 4042, expected[0]), (1, 4043, expected[1]), (2, 4044, expected[2])]
    assert [d for d in drawn if d[0] == "reset"] == [("reset", 4042), ("reset", 4043), ("reset", 4044)]
    # each reset is followed by one zero action (the authors' client), not counted as a step
    resets = [i for i, d in enumerate(drawn) if d[0] == "reset"]
    assert all(drawn[i + 1] == ("step", [0.0] * 4) for i in resets)


def _fake_env_init(self, drawn, task, seed, variation, image_size=448, render=True, variations=None, **_):
    class Inner:
        np_random = np.random.default_rng(seed)

        def set_task(self, v):
            drawn.append(("task", v))

    self.task, self.seed, self.variation, self.prompt = task, seed, variation, "reach"
    self.variations, self.env = variations, Inner()


@pytest.mark.slow
def test_expert_through_the_harness_solves_mt10_tasks(tmp_path):
    """The harness check of issue 5, small: scripted experts, 2 workers, authors' variations, full report."""
    tasks = "reach-v3,push-v3,drawer-close-v3"
    cmd = [sys.executable, "-m", "evo1cli", "bench", "metaworld", "--policy", "expert", "--json",
           "--tasks", tasks, "--episodes", "2", "--workers", "2", "--out", str(tmp_path)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["overall"]["mean_over_tasks"] >= 0.9
    assert summary["protocol"]["action_steps"] == 15 and summary["protocol"]["max_steps"] == 400
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert len(info["episodes"]) == 6 and all(0 <= e["extra"]["variation"] < 50 for e in info["episodes"])
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 3
    assert (tmp_path / "report.html").is_file() and (tmp_path / "success.png").is_file()


def test_chunk_noise_depends_on_the_episode_and_query_only(tiny_config):
    from evo1cli.client.chunks import Query
    from evo1cli.model.normalization import NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model
    from evo1cli.runtime.policy import LocalPolicy

    stats = StatsTable()
    stats.add("metaworld", "mw", NormStats.identity(8, 4))
    predict = LocalPolicy(Evo1Model.build(tiny_config.replace(horizon=16, image_size=32), stats=stats)).infer
    rng = np.random.default_rng(0)
    queries = [
        Query(
            [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)], rng.uniform(-1, 1, 8), "reach", seed=seed, index=index
        )
        for seed, index in [(4042, 0), (4042, 1), (4043, 0)]
    ]
    batched = predict(queries)
    alone = [predict([q])[0] for q in queries]
    for a, b in zip(batched, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # batching across workers does not change a chunk
    assert batched[0].shape == (16, 4) and not np.allclose(batched[0], batched[1])


@pytest.mark.slow
def test_a_checkpoint_runs_batched_over_two_workers(tiny_config):
    from evo1cli.model.normalization import NormStats, StatsTable
    from evo1cli.model.policy import Evo1Model
    from evo1cli.runtime.policy import LocalPolicy

    stats = StatsTable()
    stats.add("metaworld", "mw", NormStats.identity(8, 4))
    policy = Evo1Model.build(tiny_config.replace(horizon=16, image_size=32), stats=stats)
    s = spec(episodes=1, seed=7, action_steps=15, image_size=32, max_steps=30, options={"variations": "per-seed"})
    records, levels, _ = evaluate("metaworld", ["reach-v3", "push-v3"], s, LocalPolicy(policy), workers=2)
    assert [r.task for r in records] == ["reach-v3", "push-v3"] and levels["push-v3"] == "hard"
    assert all(r.steps == 30 and r.queries == 2 and r.extra["variation"] in range(50) for r in records)


@pytest.mark.slow
def test_accelerate_launch_shards_tasks_and_merges_one_report(tmp_path):
    """Two launched processes split the tasks (r, r + 2, ...) and the main one writes the merged report."""
    import os

    tasks = ["reach-v3", "push-v3", "drawer-close-v3"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "evo1cli", "bench", "metaworld", "--policy", "expert", "--tasks", ",".join(tasks),
           "--episodes", "1", "--variations", "per-seed", "--videos", "0", "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("mean over tasks") == 1  # one summary, from the main process
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert [e["task"] for e in info["episodes"]] == tasks
    assert [e["extra"]["process"] for e in info["episodes"]] == [0, 1, 0]
    assert info["overall"]["episodes"] == 3 and info["overall"]["mean_over_tasks"] >= 2 / 3


# ---------------------------------------------------------------------------------------------- the registry
def test_every_registered_suite_is_an_evo1_bench_command_with_its_protocols_defaults():
    from pathlib import Path

    import typer

    from evo1cli.bench.suites import SUITES, get_suite
    from evo1cli.commands.bench import app

    commands = typer.main.get_command(app).commands
    assert list(commands) == ["robotwin", *SUITES]
    for name in SUITES:
        protocol = get_suite(name).protocol
        assert protocol.suite == name
        defaults = {p.name: p.default for p in commands[name].params}
        assert (defaults["episodes"], defaults["seed"]) == (protocol.episodes, protocol.seed)
        assert (defaults["action_steps"], defaults["max_steps"]) == (protocol.action_steps, protocol.max_steps)
        assert defaults["out"] == Path(f"runs/bench/{name}")
    assert get_suite("libero-goal").protocol.suites == ["libero-goal"]
    with pytest.raises(Evo1Error, match=r"^suite: unknown suite 'libero-90'"):
        get_suite("libero-90")


def reported_episodes(task, protocol):
    """`counting_episodes` without the actions in the records (a report holds what JSON can)."""
    for k, seed, env, _ in counting_episodes(task, protocol):
        yield k, seed, env, {}


def suite(name):
    """A suite of CountingEnv tasks, for the registry test below: what a new suite's module gives."""
    from evo1cli.bench.suites import Command, Option, Suite, apply

    protocol = BenchProtocol(name, episodes=2, seed=10, action_steps=3, max_steps=20, options={"label": "plain"})

    def plan(tasks, settings):
        return tasks.split(","), apply(protocol, settings, ("label",))

    command = Command("Counting tasks.", ("a", "a comma list of a and b."), (Option("label", "plain", "A label.", str,
                      after="max_steps"),), expert=True)  # fmt: skip
    return Suite(name, protocol, plan, reported_episodes, lambda p: {"a": "easy", "b": "hard"}, command)


def test_a_new_suite_is_its_module_and_a_registry_line(monkeypatch, tmp_path):
    """The command, its options (the suite's own after the one it names) and the run come from the suite."""
    import typer
    from typer.testing import CliRunner

    from evo1cli.bench import suites
    from evo1cli.commands.bench import bench_command

    monkeypatch.setitem(suites.SUITES, "counting", __name__)
    app = typer.Typer()
    app.command("counting")(bench_command(suites.get_suite("counting")))
    app.command("unused")(lambda: None)  # two commands: `counting` stays a subcommand
    params = [p.name for p in typer.main.get_command(app).commands["counting"].params]
    assert params[params.index("max_steps") + 1] == "label" and "policy" in params and "level" not in params
    args = ["counting", "--policy", "expert", "--tasks", "a,b", "--label", "red", "--videos", "0"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert info["suite"] == "counting" and info["protocol"]["label"] == "red" and info["protocol"]["episodes"] == 2
    assert info["tasks"]["a"]["successes"] == 2 and info["tasks"]["b"]["mean_steps"] == 20
    assert info["levels"] == {"easy": {"tasks": 1, "success_rate": 1.0}, "hard": {"tasks": 1, "success_rate": 0.0}}


def test_a_protocols_options_read_as_attributes_and_a_run_changes_only_its_settings():
    from evo1cli.bench.metaworld import PROTOCOL
    from evo1cli.bench.suites import apply

    assert PROTOCOL.variations == "authors" and PROTOCOL.fast_render is False
    changed = apply(PROTOCOL, {"episodes": 3, "variations": "per-seed"}, ("variations",))
    assert (changed.episodes, changed.variations, changed.seed) == (3, "per-seed", 4042)
    assert PROTOCOL.episodes == 10 and PROTOCOL.variations == "authors"  # the defaults stay
    assert changed.replace(prompts={"a": "b"}).options == {"variations": "per-seed", "fast_render": False,
                                                           "prompts": {"a": "b"}}  # fmt: skip
    with pytest.raises(AttributeError, match="no field or option 'colour'"):
        _ = PROTOCOL.colour
    for settings, message in [
        ({"fast_render": True}, r"^--fast-render: not a setting of metaworld \(one of episodes, seed"),
        ({"seed": "7"}, r"^--seed: must be an integer, got '7'"),
        ({"variations": True}, r"^--variations: must be a string, got True"),
        ({"action_steps": 0}, r"^--action-steps: must be >= 1, got 0"),
    ]:
        with pytest.raises(Evo1Error, match=message):
            apply(PROTOCOL, settings, ("variations",))
