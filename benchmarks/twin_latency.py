"""Latency on a real loop: a policy trained in a twin, answering no sooner than `--delay-ms`, deployed there
synchronously (the arm holds while the policy thinks) and asynchronously (the next chunk is computed while
the arm executes the current one), on the same placements, interleaved episode by episode.

Reported per mode: success rate, achieved control rate, late ticks, waits, and the largest command step at a
chunk switch and within a chunk, in units of the robot's `max_step` (1 = what the safety layer allows per tick).
Printed last: the async / sync ratios of success and of the achieved rate.

    python benchmarks/twin_latency.py --checkpoint runs/so100-twin/stage2/checkpoints/last --robot so100 \\
        [--episodes 10] [--delay-ms 300] [--action-steps 8] [--image-size 112] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from evo1cli.deploy.episodes import report, run_twin_episodes
from evo1cli.deploy.fakes import Delayed
from evo1cli.deploy.rollout import Execution
from evo1cli.robots.session import RobotSession, load_robot
from evo1cli.runtime.policy import open_checkpoint
from evo1cli.sim.twin import open_scene
from evo1cli.sim.twin.scene import COLLECT_SEED_BLOCK

CAMERAS = {"so100": ("front", "wrist"), "xarm6": ("image_1", "image_2")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--robot", default="so100", choices=sorted(CAMERAS))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--delay-ms", type=float, default=300.0)
    parser.add_argument("--action-steps", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--json", help="also write the reports here")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    sizes = [f"cameras.{c}.{k}={args.image_size}" for c in CAMERAS[args.robot] for k in ("width", "height")]
    config = load_robot(args.robot, None, sizes, sim=True)
    scene = open_scene(args.robot, config.connection["sim"])
    local = open_checkpoint(args.checkpoint, dtype="float32")
    policy = Delayed(local, args.delay_ms / 1000)
    episodes: dict[str, list[Any]] = {"sync": [], "async": []}
    with RobotSession(config) as session:
        for k in range(args.episodes):  # interleaved: the machine's load falls on both modes alike
            for mode in episodes:
                execution, seeds = Execution(args.action_steps, mode), [COLLECT_SEED_BLOCK + k]
                episodes[mode] += run_twin_episodes(session, policy, scene.instruction, execution, seeds=seeds,
                                                    episode_s=scene.episode_s)  # fmt: skip
    reports = {mode: report(args.robot, scene.name, runs, mode) for mode, runs in episodes.items()}
    print(f"{args.robot} twin, policy answering after >= {args.delay_ms:.0f} ms, {args.action_steps} actions per "
          f"chunk, {args.episodes} placements")  # fmt: skip
    for mode, r in reports.items():
        waits = sum(e["cadence"]["waits"] for e in r["episodes"])
        late = r["ticks_over_budget"]
        print(f"  {mode:5s}: success {r['success_rate']:.0%}, {r['achieved_hz']:.1f} Hz (slowest episode), {late} late "
              f"ticks, {waits} waits, largest step {r['max_step_at_switch']:.2f} max_step at a switch, "
              f"{r['max_step_within_chunk']:.2f} within a chunk")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(reports, f, indent=2)
    s, a = reports["sync"], reports["async"]
    ratio = a["success_rate"] / s["success_rate"] if s["success_rate"] else float("nan")
    print(f"async / sync: success {ratio:.2f}x, control rate {a['achieved_hz'] / max(s['achieved_hz'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
