"""The one path from a policy or a teleoperator to `Arm.send_joints`.

Per command, in order:

1. not a vector of `dof` numbers -> hold (`shape`); a NaN or infinity -> hold (`nonfinite`);
2. clamp to the joint limits (`joint_limit`);
3. limit the change from the last command sent to `max_step` per joint (`max_step`);
4. with a workspace box, the end effector of the result (`arm.forward_kinematics`) outside it -> hold
   (`workspace`).

"Hold" re-sends the last command sent, so the arm stays where it was told to be. With `dry_run` every
command is checked and counted the same way but none is sent (the arm keeps its pose). A watchdog thread stops the
arm (`arm.stop()`) when commands stop arriving for `watchdog_s` once they have started (`watchdog`); `stop()`
does the same on request (`stop`). Both latch: commands are dropped until `resume()`. `handle_sigint()` makes
Ctrl-C stop the arm at once, from the signal handler, and sets `stop_requested` for the loop to see.

Every intervention is logged (python logging), appended to `events` and counted in `counts` (once per
command and kind; `events` has one entry per joint where a joint is involved). All arm calls happen under
one lock, so the watchdog, a signal handler and the control loop never interleave them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo1cli.robots.base import Arm, RobotConfig, RobotError

log = logging.getLogger(__name__)

KINDS = ("shape", "nonfinite", "joint_limit", "max_step", "workspace", "watchdog", "stop")


@dataclass(frozen=True)
class SafetyEvent:
    """One intervention: `requested` is what the caller asked for that joint, `sent` what the arm got
    (None where it does not apply, e.g. a stop)."""

    time: float
    kind: str
    joint: str | None = None
    requested: float | None = None
    sent: float | None = None
    detail: str = ""


class SafetyLayer:
    """Checks, clamps and rate-limits every command to `arm`, with a watchdog. Use `start()` first (or `with`)."""

    def __init__(
        self,
        arm: Arm,
        config: RobotConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_events: int = 10_000,
        dry_run: bool = False,
    ):
        self.arm = arm
        self.dry_run = dry_run  # check and count every command, send none (the arm keeps its pose)
        self.config = config or arm.config
        limits = self.config.limits
        self.lower = np.array(limits.lower, dtype=np.float64)
        self.upper = np.array(limits.upper, dtype=np.float64)
        self.max_step = np.array(limits.max_step, dtype=np.float64)
        self.workspace: tuple[np.ndarray, np.ndarray] | None = None
        if limits.workspace_lower is not None and limits.workspace_upper is not None:
            self.workspace = (np.array(limits.workspace_lower, float), np.array(limits.workspace_upper, float))
        self.joints = self.config.joints
        self.clock = clock
        self.events: deque[SafetyEvent] = deque(maxlen=max_events)
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.stop_requested = False  # set by Ctrl-C inside handle_sigint(); loops poll it
        self._lock = threading.RLock()
        self._last: np.ndarray | None = None  # the last command sent (or the measured pose at start/resume)
        self._latched: str | None = None
        self._last_time = 0.0
        self._allowance: float | None = None  # seconds the watchdog waits; None: disarmed
        self._arm_call_thread: int | None = None  # the thread inside an arm call, if any
        self._stop_pending = False
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ state
    @property
    def last_command(self) -> np.ndarray | None:
        """The last command sent (a copy), or the measured pose read at start/resume."""
        with self._lock:
            return None if self._last is None else self._last.copy()

    @property
    def stopped(self) -> str | None:
        """Why commands are being dropped ("watchdog", "Ctrl-C", ...), or None while they go through."""
        return self._latched

    # ------------------------------------------------------------------------------------------ life cycle
    def start(self) -> np.ndarray:
        """Read the measured joints as the first "last command" and start the watchdog. Returns them."""
        measured = self._adopt_measured()
        if self.workspace is not None and self._arm_call(self.arm.forward_kinematics, measured) is None:
            raise RobotError(f"the workspace box needs forward kinematics, which the {self.config.robot} driver lacks")
        if self._watchdog is None:
            self._closing.clear()
            self._watchdog = threading.Thread(target=self._watch, name="safety-watchdog", daemon=True)
            self._watchdog.start()
        return measured

    def close(self) -> None:
        """End the watchdog. The arm keeps holding its last command."""
        self._closing.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2.0)
            self._watchdog = None

    def __enter__(self) -> SafetyLayer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resume(self) -> np.ndarray:
        """Clear a stop: `arm.resume()`, then the measured joints become the last command. Returns them."""
        with self._lock:
            self._arm_call(self.arm.resume)
            measured = self._adopt_measured()
            self._latched = None
            self.stop_requested = False
            log.info("safety: resumed at %s", np.round(measured, 3).tolist())
            return measured

    def adopt(self) -> np.ndarray:
        """The arm was moved by something else (a person resetting a scene): hold where it is now. Returns it."""
        with self._lock:
            measured = self._adopt_measured()
            self.command(measured)
            return measured

    def read_joints(self) -> np.ndarray:
        """The measured joints, read under the lock the watchdog and the Ctrl-C handler also take."""
        return np.asarray(self._arm_call(self.arm.read_joints), dtype=np.float64)

    # ------------------------------------------------------------------------------------------ commands
    def command(self, target: Any) -> np.ndarray | None:
        """Check, clamp and send one absolute joint command. Returns what was sent (a copy), or None while
        stopped. A `RobotError` from the arm latches a stop and is re-raised."""
        with self._lock:
            if self._last is None:
                raise RobotError("SafetyLayer.start() must be called before commands")
            if self._latched is not None:
                return None
            now = self.clock()
            self._last_time, self._allowance = now, self.config.watchdog_s
            last = self._last
            requested = _as_vector(target)
            if requested is None or requested.shape != last.shape:
                shape = "not numeric" if requested is None else f"shape {requested.shape}"
                self._record(now, "shape", detail=f"expected {len(last)} values, got {shape}")
                return self._send(last)
            bad = np.flatnonzero(~np.isfinite(requested))
            if len(bad):
                for i, j in enumerate(bad):
                    self._record(now, "nonfinite", j, requested[j], last[j], count=i == 0)
                return self._send(last)
            clamped = np.clip(requested, self.lower, self.upper)
            too_far = np.abs(clamped - last) > self.max_step
            stepped = np.where(too_far, last + np.sign(clamped - last) * self.max_step, clamped)
            out = np.clip(stepped, self.lower, self.upper)  # exact bounds despite rounding in the step
            if self.workspace is not None:
                position = self._arm_call(self.arm.forward_kinematics, out)
                lo, hi = self.workspace
                if position is None or not np.all((lo <= position) & (position <= hi)):
                    where = "unknown" if position is None else np.round(position, 1).tolist()
                    self._record(now, "workspace", detail=f"end effector at {where} mm is outside the box")
                    return self._send(last)
            for kind, changed in (("joint_limit", clamped != requested), ("max_step", too_far)):
                for i, j in enumerate(np.flatnonzero(changed)):
                    self._record(now, kind, j, requested[j], out[j], count=i == 0)
            return self._send(out)

    def move_to(self, target: Any, max_step_scale: float = 0.5, tolerance: float = 1e-6) -> None:
        """Stream commands towards `target` at `control_hz`, at most `max_step_scale` x max_step per tick, until
        the commanded pose reaches it (every tick goes through `command`). Raises RobotError if stopped."""
        goal = np.clip(np.asarray(target, dtype=np.float64), self.lower, self.upper)
        period = 1.0 / self.config.control_hz
        step = self.max_step * max_step_scale
        tick = time.monotonic()
        while True:
            last = self.last_command
            if last is None:
                raise RobotError("SafetyLayer.start() must be called before move_to()")
            if np.all(np.abs(goal - last) <= tolerance):
                return
            if self.command(last + np.clip(goal - last, -step, step)) is None:
                raise RobotError(f"move interrupted: safety stop ({self._latched})")
            tick += period
            time.sleep(max(0.0, tick - time.monotonic()))

    def stop(self, reason: str = "stop") -> None:
        """Stop the arm now and drop commands until `resume()`."""
        with self._lock:
            self._latched = reason
            self._record(self.clock(), "stop", detail=reason)
            self._arm_call(self.arm.stop)

    @contextlib.contextmanager
    def idle(self, timeout_s: float | None = 30.0) -> Iterator[None]:
        """A pause in the command stream (e.g. a policy query): the arm holds its last command and the watchdog
        waits `timeout_s` instead of `watchdog_s` (None: not at all). Afterwards the normal watchdog is back, or
        stays disarmed if no command had armed it yet (teach mode sends none)."""
        with self._lock:
            armed = self._allowance is not None  # a stream that never started (hand-guiding) stays unwatched
            self._last_time, self._allowance = self.clock(), timeout_s
        try:
            yield
        finally:
            with self._lock:
                self._last_time, self._allowance = self.clock(), self.config.watchdog_s if armed else None

    @contextlib.contextmanager
    def handle_sigint(self) -> Iterator[None]:
        """Ctrl-C stops the arm from the signal handler itself and sets `stop_requested`; a second Ctrl-C
        raises KeyboardInterrupt. The previous handler comes back on exit. Outside the main thread: no-op."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ------------------------------------------------------------------------------------------ internals
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        log.warning("safety: Ctrl-C, stopping the arm (press again to abort)")
        if self._arm_call_thread == threading.get_ident():
            # The interrupted code is inside an arm call on this thread: a second call into the SDK now could
            # deadlock on its own locks, so the stop follows as soon as that call returns (`_arm_call`).
            self._stop_pending = True
        else:
            self.stop("Ctrl-C")

    def _arm_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            outer = self._arm_call_thread
            self._arm_call_thread = threading.get_ident()
            try:
                return fn(*args)
            finally:
                self._arm_call_thread = outer
                if self._stop_pending and outer is None:
                    self._stop_pending = False
                    self.stop("Ctrl-C")

    def _send(self, target: np.ndarray) -> np.ndarray | None:
        if self._latched is not None:  # a Ctrl-C may have stopped the arm while this command was being checked
            return None
        try:
            if not self.dry_run:
                self._arm_call(self.arm.send_joints, target.copy())
        except RobotError as err:
            self._latched = f"arm error: {err}"
            with contextlib.suppress(RobotError):
                self._arm_call(self.arm.stop)
            raise
        self._last = target.copy()
        return target.copy()

    def _adopt_measured(self) -> np.ndarray:
        """The measured joints as the last command: outside the limits by more than one max_step is an error."""
        with self._lock:
            measured = np.asarray(self._arm_call(self.arm.read_joints), dtype=np.float64)
            if measured.shape != self.lower.shape or not np.all(np.isfinite(measured)):
                raise RobotError(f"the arm reported {measured!r}, not {len(self.lower)} finite joint values")
            far = np.flatnonzero((measured < self.lower - self.max_step) | (measured > self.upper + self.max_step))
            if len(far):
                j = far[0]
                raise RobotError(
                    f"{self.joints[j]} is at {measured[j]:g}, outside its limits [{self.lower[j]:g}, "
                    f"{self.upper[j]:g}]: move it inside (teach mode or the vendor's tool) or widen the limits"
                )
            self._last = np.clip(measured, self.lower, self.upper)
            self._allowance = None  # the watchdog arms with the first command
            return measured

    def _record(
        self,
        now: float,
        kind: str,
        j: int | None = None,
        requested: float | None = None,
        sent: float | None = None,
        detail: str = "",
        count: bool = True,
    ) -> None:
        """Log and keep one event; `count` it unless another event of the same command already was."""
        if j is None:
            event = SafetyEvent(now, kind, detail=detail)
            log.warning("safety: %s (%s)", kind, detail)
        else:
            event = SafetyEvent(now, kind, self.joints[j], float(requested), float(sent), detail)
            level = logging.INFO if kind in ("joint_limit", "max_step") else logging.WARNING
            log.log(level, "safety: %s %s: requested %g, sent %g", kind, event.joint, requested, sent)
        self.events.append(event)
        self.counts[kind] += int(count)

    def _watch(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                deadline = None if self._allowance is None else self._last_time + self._allowance
                if self._latched is None and deadline is not None and self.clock() >= deadline:
                    silence = self.clock() - self._last_time
                    self._latched = "watchdog"
                    self._record(self.clock(), "watchdog", detail=f"no command for {silence:.3f} s")
                    try:
                        self._arm_call(self.arm.stop)
                    except RobotError as err:
                        log.error("safety: watchdog could not stop the arm: %s", err)
                    continue
            wait = 0.05 if deadline is None or self._latched else min(0.05, max(0.0, deadline - self.clock()))
            self._closing.wait(wait)


def _as_vector(target: Any) -> np.ndarray | None:
    """`target` as a float64 array, or None if it is not numeric at all (strings, None, ragged lists, ...)."""
    try:
        return np.asarray(target, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
