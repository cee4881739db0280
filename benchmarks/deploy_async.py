"""`evo1 deploy` on the simulated arms: synchronous vs asynchronous inference, interleaved.

For each simulated robot (SO-100, xArm6; `--fake`: the SDK / serial-port simulations and two
rehearsal-video cameras decoded by OpenCV, 320x240 with `max_age_s` 2 s by default: on a shared 2-core
machine the decoders can fall behind, which is the cameras' problem, not the loop's) and each policy,

    tiny          the tiny model (random weights, 112 px, H = 50), local, on the device `auto` picks
    tiny+300ms    the same, through `evo1 serve` (loopback websocket), answering no sooner than 300 ms
    circle+300ms  a scripted closed-loop policy (`deploy.fakes.Circle`: 2 units per action around a
                  circle in two joints, from the measured pose), answering after 300 ms

the loop runs `--seconds` in sync and in async mode, alternately, `--repeats` times (the machine is
shared: interleaving spreads any load over both modes). Reported per cell: achieved Hz (median and range),
late ticks, waits, and the largest command step at a chunk switch and within a chunk, in units of the
robot's `max_step` (1 = what the safety layer allows per tick). Printed last: async / sync Hz.

    python benchmarks/deploy_async.py [--seconds 8] [--repeats 3] [--robots so100,xarm6] [--json out.json]
                                      [--threads N]   (torch threads; on a small, shared CPU leave one to the loop)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from typing import Any

import numpy as np
import torch
from serving import in_thread, stop  # benchmarks/serving.py: a server on a background event loop

from evo1cli.deploy.fakes import Circle, Delayed
from evo1cli.deploy.rollout import Execution, run_rollout
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import FeatureStats, NormStats, StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.robots.session import RobotSession, load_robot
from evo1cli.runtime.device import choose_placement
from evo1cli.runtime.policy import LocalPolicy, open_policy
from evo1cli.serving.server import PolicyServer, ServeOptions

CIRCLE_JOINTS = {"so100": (0, 4), "xarm6": (0, 5)}  # base and wrist/flange roll: the end effector stays put


def tiny(dof: int) -> Evo1Model:
    placement = choose_placement()
    stats = StatsTable()
    unit = FeatureStats(-np.ones(dof) * 100, np.ones(dof) * 100)
    stats.add("robot", "demo", NormStats(unit, unit))
    model = Evo1Model.build(Evo1Config.preset("tiny"), stats=stats).eval()
    return model.to(placement.device, placement.torch_dtype)


def robot_config(robot: str, size: str) -> Any:
    width, height = size.split("x")
    names = {"so100": ("front", "wrist"), "xarm6": ("base", "wrist")}[robot]
    sets = [f"cameras.{c}.{k}={v}" for c in names for k, v in (("width", width), ("height", height))]
    return load_robot(robot, overrides=[*sets, *(f"cameras.{c}.max_age_s=2" for c in names)], fake=True)


def one_run(config: Any, policy: Any, inference: str, seconds: float, start: np.ndarray | None) -> dict:
    with RobotSession(config) as session:
        if start is not None:
            session.safety.move_to(start)
        cadence = run_rollout(session, policy, "Pick up the cube", Execution(config.action_steps, inference),
                              max_seconds=seconds)  # fmt: skip
    return cadence.summary()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} [{min(values):5.2f}-{max(values):5.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--robots", default="so100,xarm6")
    parser.add_argument("--policies", default="tiny,tiny+300ms,circle+300ms")
    parser.add_argument("--json", default=None, help="Also write every run's report here.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--cameras", default="320x240", help="Rehearsal camera size, WIDTHxHEIGHT.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("evo1cli.robots.safety").setLevel(logging.ERROR)  # the tiny model's steps are clamped

    print(f"tiny model: {choose_placement().banner()}, {torch.get_num_threads()} torch threads", flush=True)
    results: dict[tuple[str, str, str], list[dict]] = {}
    for robot in args.robots.split(","):
        config = robot_config(robot, args.cameras)
        dof = len(config.joints)
        model = tiny(dof)
        server = PolicyServer(Delayed(LocalPolicy(model), 0.3), ServeOptions(port=0))
        port, loop, thread = in_thread(server.serve_forever)
        circle = Circle(np.zeros(dof), joints=CIRCLE_JOINTS[robot])
        policies = {
            "tiny": (LocalPolicy(model), None),
            "tiny+300ms": (open_policy(None, f"ws://127.0.0.1:{port}", None), None),
            "circle+300ms": (Delayed(circle, 0.3), circle.start()),
        }
        for name in args.policies.split(","):
            policy, start = policies[name]  # a run ending on time leaves no query in flight: reuse is safe
            for repeat in range(args.repeats):
                for inference in ("sync", "async") if repeat % 2 == 0 else ("async", "sync"):
                    report = one_run(config, policy, inference, args.seconds, start)
                    results.setdefault((robot, name, inference), []).append(report)
                    print(f"{robot:6s} {name:13s} {inference:5s} #{repeat}: {report['achieved_hz']:5.2f} Hz, "
                          f"query {report['infer']['mean_ms']:.0f} ms, {report['ticks_over_budget']} late, "
                          f"{report['waits']} waits, step at switch "
                          f"{report['max_step_at_switch']:.2f} (within {report['max_step_within_chunk']:.2f})",
                          flush=True)  # fmt: skip
        policies["tiny+300ms"][0].close()
        stop(loop, thread)

    print("\nrobot  policy        mode   achieved Hz (median [range])  late ticks  step at switch  step within")
    for (robot, name, inference), reports in results.items():
        hz = [r["achieved_hz"] for r in reports]
        late = [r["ticks_over_budget"] for r in reports]
        switch = max(r["max_step_at_switch"] for r in reports)
        within = max(r["max_step_within_chunk"] for r in reports)
        cells = f"{spread(hz):28s}  {max(late):10d}  {switch:14.2f}  {within:11.2f}"
        print(f"{robot:6s} {name:13s} {inference:5s}  {cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"robot": k[0], "policy": k[1], "inference": k[2], "runs": v} for k, v in results.items()], f)
    ratios = []
    for (robot, name, inference), reports in results.items():
        if inference == "async":
            sync = statistics.median(r["achieved_hz"] for r in results[robot, name, "sync"])
            ratios.append(f"{robot} {name} {statistics.median(r['achieved_hz'] for r in reports) / sync:.2f}x")
    print("async / sync achieved Hz: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
