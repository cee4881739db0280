"""Teleoperated demonstrations into a LeRobot v2.1 dataset (`evo1 collect --robot xarm6|so100`).

`collect_teleop` is the whole job: it opens the robot session (arm, safety layer, cameras), then the
dataset (only once connected, so that a failed connection leaves nothing behind), the teleoperation
source and the keys, and runs `record_teleop`.

Per control tick (1 / control_hz, kept by `robots.ticks.TickClock`) one frame: state = the follower's
measured joints, action = the absolute joint target of that moment, images = every camera's newest frame.
Where the target comes from:

- `LeaderArm` (SO-100): the leader arm's joints, which are also sent to the follower through the safety layer;
- `HandGuiding` (xArm6): the arm itself in teach mode, moved by hand; the action of tick t is the measured
  pose of tick t + 1 (the last frame's is its own pose), so replaying the actions retraces the demonstration;
  `g` closes or opens the gripper, whose action is then the command sent (what the gripper was told to do).

Episodes: a reset period (`reset_s`, or until `s`), then recording until `episode_s` or a key:
`s`/space/enter save, `d` discard, `r` discard and record again at once, `q` save and quit. Each episode is
written atomically; Ctrl-C (the arm is stopped by the safety layer) or a safety stop (the watchdog: the loop
stalled) ends the recording and discards the episode in progress only.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evo1cli.collect.dataset import FrameSpec, Recorder, RecordingSummary, open_dataset
from evo1cli.collect.scripted import ScriptedOperator
from evo1cli.data.writer import DatasetWriter
from evo1cli.errors import Evo1Error
from evo1cli.robots.base import RobotConfig
from evo1cli.robots.session import RobotSession, make_leader
from evo1cli.robots.ticks import TickClock
from evo1cli.robots.view import CameraView


# ------------------------------------------------------------------------------------------------ sources
class TeleopSource(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    # None (or NaN entries): the next measured pose (of those joints)
    def target(self, robot: Any, key: str | None) -> np.ndarray | None: ...


class LeaderArm:
    """The SO-100 leader: its joints are the action, and the follower is commanded to them."""

    name = "leader arm"

    def __init__(self, leader: Any):
        self.leader = leader

    def start(self) -> None:
        self.leader.connect()

    def stop(self) -> None:
        self.leader.disconnect()

    def target(self, robot: Any, key: str | None) -> np.ndarray:
        action = np.asarray(self.leader.read_joints(), dtype=np.float64)
        robot.safety.command(action)
        return action


class HandGuiding:
    """The arm in its teach (gravity-compensated) mode, moved by hand; `g` closes or opens the gripper (a hand
    cannot move a motor-driven gripper). Until `g` is first pressed nothing is commanded; from then on the
    gripper's goal (its lower or upper limit) goes through the safety layer every tick, rate-limited, and the
    action's gripper value is what was sent (not the measured opening, which stops at the object's width)."""

    name = "hand-guiding"

    def __init__(self, arm: Any):
        self.arm = arm
        self.gripper: float | None = None  # the gripper's goal once `g` has been pressed

    def start(self) -> None:
        self.arm.teach_mode(True)

    def stop(self) -> None:
        self.arm.teach_mode(False)

    def target(self, robot: Any, key: str | None) -> np.ndarray | None:
        if key in GRIPPER:
            lower, upper = robot.safety.lower[-1], robot.safety.upper[-1]
            now = self.gripper if self.gripper is not None else robot.read_joints()[-1]
            self.gripper = float(lower if now > (lower + upper) / 2 else upper)
        if self.gripper is None:
            return None
        measured = robot.read_joints()
        sent = robot.safety.command(np.r_[measured[:-1], self.gripper])  # the arm part is ignored in teach mode
        partial = np.full(len(measured), np.nan)  # NaN: the next measured pose
        partial[-1] = sent[-1] if sent is not None else self.gripper
        return partial


class KeyboardJog:
    """Joint jogging from the keyboard: `1`..`9` pick a joint (the last one is the gripper), `+` (or `=`) and
    `-` move it by `steps` per press (hold the key: the terminal repeats it). The target goes through the
    safety layer every tick, and is the action."""

    name = "keyboard"

    def __init__(self, steps: np.ndarray):
        self.steps = np.asarray(steps, dtype=np.float64)
        self.joint = 0
        self.goal: np.ndarray | None = None

    def start(self) -> None:
        self.goal = None

    def stop(self) -> None:
        pass

    def target(self, robot: Any, key: str | None) -> np.ndarray:
        if self.goal is None:
            self.goal = robot.safety.last_command
        if key is not None and key.isdigit() and 1 <= int(key) <= len(self.steps):
            self.joint = int(key) - 1
        elif key in ("+", "=", "-"):
            self.goal[self.joint] += self.steps[self.joint] * (-1 if key == "-" else 1)
        sent = robot.safety.command(self.goal)
        if sent is not None:
            self.goal = sent.copy()  # what the limits allowed: the next press starts from there
        return self.goal.copy()


# ------------------------------------------------------------------------------------------------ keys
class Keys(Protocol):
    def poll(self) -> str | None: ...


class NoKeys:
    def poll(self) -> str | None:
        return None


class TerminalKeys:
    """Single key presses from the terminal (cbreak mode, restored on exit), read by a thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self._done = threading.Event()

    @staticmethod
    def available() -> bool:
        return sys.stdin.isatty() and os.name == "posix"

    @contextlib.contextmanager
    def active(self) -> Iterator[TerminalKeys]:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        thread = threading.Thread(target=self._read, args=(fd,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._done.set()
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _read(self, fd: int) -> None:
        while not self._done.is_set():
            if select.select([fd], [], [], 0.1)[0]:
                self._queue.put(os.read(fd, 1).decode(errors="ignore"))

    def poll(self) -> str | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None


SAVE, DISCARD, RERECORD, QUIT, GRIPPER = ("s", " ", "\n", "e"), ("d",), ("r",), ("q",), ("g",)


# ------------------------------------------------------------------------------------------------ the job
# Per robot; the first is its default. `scripted`: a scripted person (`collect.scripted`) on the digital twin.
MODES = {"so100": ("leader", "keyboard", "scripted"), "xarm6": ("hand", "keyboard", "scripted")}


@dataclass(frozen=True)
class TeleopOptions:
    episodes: int = 50
    episode_s: float = 60.0  # the longest an episode records
    reset_s: float = 10.0  # time to reset the scene before each episode
    mode: str | None = None  # leader (SO-100), hand (xArm6 teach mode) or keyboard; None: the robot's default
    view: bool = False  # show the cameras live in a window
    version: str | None = None  # LeRobot layout of a new dataset (v2.1 unless "v3.0")
    seed: int = 0  # digital twin: attempt k is placed by seed + k


def collect_teleop(
    config: RobotConfig,
    task: str,
    out: str | Path,
    options: TeleopOptions,
    say: Callable[[str], None] = print,
    status: Callable[[str], None] | None = None,
    keys: Keys | None = None,
) -> RecordingSummary:
    """Record teleoperated demonstrations of `task` into `out` (created, or appended to).

    `say` gets the one-line banner (source and keys), `status` a progress line every tick; `keys` default to
    the terminal's (none when it is not interactive)."""
    modes = MODES[config.robot]
    mode = options.mode or modes[0]
    if mode not in modes:
        raise Evo1Error(f"{config.robot} teleoperation is one of {', '.join(modes)}, got {mode!r}", field="--teleop")
    terminal = TerminalKeys() if keys is None and TerminalKeys.available() else None
    if mode == "scripted" and not config.connection.get("sim"):
        raise Evo1Error("scripted teleoperation moves the digital twin's arm: add --sim", field="--teleop")
    if mode == "keyboard" and keys is None and terminal is None:
        raise Evo1Error("keyboard teleoperation needs an interactive terminal", field="--teleop")
    view = CameraView() if options.view else None
    with RobotSession(config) as session, contextlib.ExitStack() as stack:
        if view is not None:
            stack.callback(view.close)
        writer = open_dataset(
            out, FrameSpec.of_robot(config), options.version
        )  # once connected: a failed connection leaves no dataset
        if mode == "leader" or (mode == "scripted" and config.robot == "so100"):
            source: TeleopSource = LeaderArm(make_leader(config))
        elif mode in ("hand", "scripted"):
            source = HandGuiding(session.arm)
        else:
            source = KeyboardJog(np.array(config.limits.max_step) / 2)
        fields, reset = _twin_hooks(session.twin, options.seed)
        if mode == "scripted":
            operator = ScriptedOperator(session.twin, options.seed, pause=lambda: session.safety.idle(None))
            keys, fields, reset = operator, operator.episode_fields, None  # the person resets the scene
        if keys is None:
            keys = stack.enter_context(terminal.active()) if terminal is not None else NoKeys()
        jog = {"keyboard": "; 1-9 pick a joint, +/- move it"}.get(mode, "")
        if isinstance(source, HandGuiding):
            jog = "; g closes/opens the gripper"
        who = "scripted person, " if mode == "scripted" else ""
        say(f"{config.robot}: {who}{source.name}; keys: s/space save, d discard, r again, q quit{jog}; Ctrl-C stops")
        phase_was = [""]

        def tick(phase: str, kept: int, seconds: float) -> None:
            if reset is not None and phase == "reset" and phase_was[0] != "reset":
                reset()
            phase_was[0] = phase
            line = f"episode {kept + 1}/{options.episodes}: {phase} {seconds:5.1f} s"
            if status is not None:
                status(line)
            if view is not None:
                view.show(session.read_images(), line)

        return record_teleop(
            session, source, writer, task, options.episodes, options.episode_s, options.reset_s, keys, tick, fields
        )


def _twin_hooks(twin: Any, seed: int) -> tuple[Callable[[], dict[str, Any]] | None, Callable[[], None] | None]:
    """On a digital twin with a person at the keys: what each episode line records (success, placement) and
    the scene reset at the start of each reset period (attempt k placed by seed + k)."""
    if twin is None:
        return None, None
    world, attempts = twin.world, [0]

    def fields() -> dict[str, Any]:
        return {"success": world.success(), "scene": world.scene.name, **world.placement.as_dict()}

    def reset() -> None:
        world.reset(seed + attempts[0])
        attempts[0] += 1

    return fields, reset


# ------------------------------------------------------------------------------------------------ loop
def record_teleop(
    robot: Any,
    source: TeleopSource,
    writer: DatasetWriter,
    task: str,
    episodes: int,
    episode_s: float,
    reset_s: float,
    keys: Keys | None = None,
    status: Callable[[str, int, float], None] | None = None,
    fields: Callable[[], dict[str, Any]] | None = None,
) -> RecordingSummary:
    """Record `episodes` episodes; `status(phase, episode, seconds)` is called every tick (for a live display),
    `fields()` when an episode is saved (more values for its episodes.jsonl line)."""
    keys = keys or NoKeys()
    safety = robot.safety
    period = 1.0 / robot.config.control_hz
    summary = RecordingSummary()
    source.start()
    try:
        with safety.handle_sigint():
            outcome = "saved"
            while summary.kept < episodes and not summary.interrupted:
                if outcome != "again":  # `r` records again at once
                    key = _reset_period(robot, source, keys, reset_s, period, summary, status)
                    if key in QUIT or summary.interrupted:
                        break
                outcome = _record_episode(robot, source, writer, task, keys, episode_s, period, summary, status, fields)
                if outcome == "quit":
                    break
    finally:
        source.stop()
    return summary


def _stopped(robot: Any, summary: RecordingSummary) -> bool:
    """Ctrl-C, or a safety stop (the arm is stopped and stays so): the recording ends, the episode in progress is
    discarded."""
    safety = robot.safety
    if not safety.stop_requested and safety.stopped is None:
        return False
    summary.interrupted = True
    if not safety.stop_requested:
        summary.stopped = safety.stopped
    return True


def _reset_period(
    robot: Any, source: TeleopSource, keys: Keys, reset_s: float, period: float, summary: RecordingSummary, status: Any
) -> str | None:
    """Until `reset_s` passes or a key: the leader still drives the follower so the scene can be reset."""
    ticks = TickClock(period)
    while ticks.elapsed() < reset_s:
        if _stopped(robot, summary):
            return None
        key = keys.poll()
        source.target(robot, key)
        if key is not None and (key in SAVE or key in QUIT):
            return key
        if status:
            status("reset", summary.kept, ticks.elapsed())
        ticks.wait()
    return None


def _record_episode(
    robot: Any,
    source: TeleopSource,
    writer: DatasetWriter,
    task: str,
    keys: Keys,
    episode_s: float,
    period: float,
    summary: RecordingSummary,
    status: Any,
    fields: Callable[[], dict[str, Any]] | None = None,
) -> str:
    """One episode: "saved", "discarded", "again" (discarded, record again) or "quit" (saved, then stop)."""
    recorder = Recorder(writer, task)
    pending: tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None] | None = None  # waits for the next pose
    outcome = "saved"
    ticks = TickClock(period)
    try:
        while ticks.elapsed() < episode_s:
            if _stopped(robot, summary):
                outcome = "discarded"
                break
            state = robot.read_joints()
            images = robot.read_images()
            key = keys.poll()
            action = source.target(robot, key)
            if action is None or np.isnan(action).any():  # the pose reached now is the previous frame's action
                if pending is not None:
                    recorder.add(pending[0], _reached(state, pending[2]), pending[1])
                pending = (state, images, action)
            else:
                recorder.add(state, action, images)
            if key in DISCARD or key in RERECORD:
                outcome = "discarded" if key in DISCARD else "again"
                break
            if key in SAVE or key in QUIT:
                outcome = "quit" if key in QUIT else "saved"
                break
            if status:
                status("record", summary.kept, ticks.elapsed())
            ticks.wait()
        summary.over_budget += ticks.over_budget
        if pending is not None and outcome in ("saved", "quit"):
            recorder.add(pending[0], _reached(pending[0], pending[2]), pending[1])
        if outcome in ("saved", "quit") and recorder.frames > 0:
            with robot.safety.idle(None):  # encoding the videos pauses the command stream: the arm holds
                recorder.commit(source=source.name, robot=robot.config.robot, **(fields() if fields else {}))
            summary.kept += 1
            summary.frames += recorder.frames
        else:
            recorder.discard()
            summary.discarded += 1
    except BaseException:
        recorder.discard()
        raise
    return outcome


def _reached(pose: np.ndarray, partial: np.ndarray | None) -> np.ndarray:
    """A hand-guided action: the pose reached next, except where the source commanded a joint itself."""
    return pose if partial is None else np.where(np.isnan(partial), pose, partial)
