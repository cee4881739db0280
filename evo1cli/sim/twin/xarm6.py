"""The Evo-1 paper's xArm6 setup as a MuJoCo twin: "put the cube in the bowl".

A UFACTORY xArm6 (its body tree generated from UFACTORY's modified-DH parameters, links as primitives) with a
parallel gripper like the xArm Gripper (two fingers on slide joints, coupled, one force-limited position
actuator, 85 mm maximum opening), standing on a table; a cube placed at random in front of it and a fixed bowl
to its right. Cameras: `env` (fixed, across the table, facing the arm) and `wrist` (on the gripper, looking
down the fingers), recorded as `image_1` and `image_2`.

Units: the arm's joints in radians (the xArm's degrees converted), the gripper as one finger's opening in
metres: 0 = closed (the pads touch), `FINGER_OPEN` = fully open (85 mm between the pads); the hardware
attachment maps the xArm Gripper's 0..850 pulses onto it linearly. The world frame is the arm's base frame
(metres), the table top at z = 0; grasping the cube on the table keeps the flange ~180 mm above it, inside the
robot config's workspace box (z >= 80 mm).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np

from evo1cli.sim.twin.scene import Placement, Scene, Trajectory, aim_miss, mujoco_module
from evo1cli.sim.twin.xarm6_kinematics import XARM6_MDH

CUBE_YAW = math.radians(10)  # the cube is set down square to the table's edge, give or take 10 degrees
ARM_JOINTS = ("j1", "j2", "j3", "j4", "j5", "j6")
GRIPPER_JOINT = "finger_left"
# UFACTORY's joint ranges (degrees).
JOINT_RANGES_DEG = ((-360, 360), (-118, 120), (-225, 11), (-360, 360), (-97, 180), (-360, 360))
HOME_DEG = (0.0, -20.0, -40.0, 0.0, 60.0, 0.0)  # the robot config's home
FINGER_OPEN = 0.0425  # m per finger: 85 mm between the pads
TCP_OFFSET = 0.172  # m from the flange to the point between the pad centres (the xArm Gripper's TCP offset)

CUBE_HALF = 0.018  # a 36 mm cube
APPROACH_HEIGHT = 0.10  # m: the scripted person's hover over the grasp point before going down
LOW_HOVER = 0.045  # m: the height over the grasp point where the aim is corrected (the pads clear the cube)
CUBE_REGION = ((0.28, 0.48), (-0.02, 0.23))  # x, y ranges of the cube's centre (20 x 25 cm), metres
BOWL_POS = (0.38, -0.20, 0.0)  # the bowl's centre on the table
BOWL_INNER_R = 0.07
BOWL_WALL_H = 0.045
BOWL_FLOOR = 0.006  # the bowl's floor thickness

# Joint-speed budget of the scripted plan: the safety layer allows 3 deg per 1/30 s tick (90 deg/s) and 50
# pulses per tick (1500 pulses/s); the plan stays below 70 % of both.
MAX_PLAN_SPEED = math.radians(90.0) * 0.7
MAX_GRIPPER_SPEED = FINGER_OPEN / 850 * 1500 * 0.7

# Collision groups: world objects collide with everything, the gripper only with the world objects, the arm's
# links with nothing (the scripted and learned motions stay above the table; a self-collision model is not
# the twin's business).
OBJ_TYPE, OBJ_AFFINITY = 1, 3
GRIP_TYPE, GRIP_AFFINITY = 2, 1


def _quat(rot: np.ndarray) -> np.ndarray:
    mujoco = mujoco_module()
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.asarray(rot, dtype=np.float64).reshape(9))
    return quat


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _look_at(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> list[float]:
    """A camera's xyaxes at `pos` looking at `target` (MuJoCo cameras look along their -z)."""
    z = np.asarray(pos, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return [*x, *y]


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class CubeBowl(Scene):
    name = "xarm6-cube-bowl"
    robot = "xarm6"
    instruction = "put the cube in the bowl"
    joints = (*ARM_JOINTS, GRIPPER_JOINT)
    actuators = ("a1", "a2", "a3", "a4", "a5", "a6", "gripper")
    cameras = MappingProxyType({"image_1": "env", "image_2": "wrist"})
    home = (*(math.radians(v) for v in HOME_DEG), FINGER_OPEN)
    episode_s = 18.0

    # ------------------------------------------------------------------------------------------------ build
    def build(self) -> Any:
        mujoco = mujoco_module()
        spec = mujoco.MjSpec()
        spec.modelname = self.name
        spec.compiler.degree = False  # joint ranges in radians
        spec.option.timestep = 0.002
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = 10
        spec.visual.global_.offwidth, spec.visual.global_.offheight = 640, 480
        spec.visual.quality.offsamples = 0
        spec.visual.quality.shadowsize = 0
        spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
        spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
        spec.visual.headlight.specular = [0.0, 0.0, 0.0]
        world = spec.worldbody
        for pos, direction in (((0.8, -0.6, 1.6), (-0.4, 0.3, -1.0)), ((-0.2, 0.8, 1.4), (0.3, -0.5, -1.0))):
            light = world.add_light(pos=pos, dir=direction, directional=True, castshadow=False)
            light.diffuse = [0.45, 0.45, 0.45]
            light.specular = [0.1, 0.1, 0.1]

        def geom(body: Any, kind: str, **kwargs: Any) -> Any:
            g = body.add_geom(type=getattr(mujoco.mjtGeom, f"mjGEOM_{kind.upper()}"))
            for key, value in kwargs.items():
                setattr(g, key, value)
            return g

        def solid(body: Any, kind: str, **kwargs: Any) -> Any:
            return geom(body, kind, contype=OBJ_TYPE, conaffinity=OBJ_AFFINITY, **kwargs)

        # Table (top at z = 0), floor, the arm's base.
        solid(world, "box", name="table", size=[0.45, 0.55, 0.02], pos=[0.3, 0.0, -0.02], rgba=[0.62, 0.5, 0.38, 1])
        for sx in (-0.12, 0.72):
            for sy in (-0.5, 0.5):
                geom(world, "box", size=[0.025, 0.025, 0.36], pos=[sx, sy, -0.4], rgba=[0.3, 0.3, 0.3, 1],
                     contype=0, conaffinity=0)  # fmt: skip
        geom(world, "plane", name="floor", size=[2, 2, 0.1], pos=[0, 0, -0.76], rgba=[0.55, 0.57, 0.6, 1])
        geom(world, "cylinder", size=[0.065, 0.05, 0], pos=[0, 0, 0.05], rgba=[0.85, 0.85, 0.87, 1],
             contype=0, conaffinity=0)  # fmt: skip

        # The arm: body i's frame is modified-DH frame i (metres); hinge about local z.
        link_rgba = ([0.9, 0.9, 0.92, 1], [0.2, 0.2, 0.22, 1])
        masses = (2.2, 2.0, 1.8, 1.4, 1.0, 0.4)
        parent = world
        mdh = [(alpha, a / 1000, d / 1000, off) for alpha, a, d, off in XARM6_MDH]
        for i, (alpha, a, d, offset) in enumerate(mdh):
            rot = _rot_x(alpha) @ _rot_z(offset)
            pos = _rot_x(alpha) @ np.array([a, 0.0, d])
            body = parent.add_body(name=f"link{i + 1}", pos=pos, quat=_quat(rot), gravcomp=1)
            lo, hi = JOINT_RANGES_DEG[i]
            body.add_joint(
                name=ARM_JOINTS[i],
                type=mujoco.mjtJoint.mjJNT_HINGE,
                axis=[0, 0, 1],
                range=[math.radians(lo), math.radians(hi)],
                damping=100.0,
                armature=0.2,
            )
            # The link's shape: capsules from this frame's origin to the next frame's (via the a offset).
            if i + 1 < len(mdh):
                n_alpha, n_a, n_d, _ = mdh[i + 1]
                child = np.array([n_a, -math.sin(n_alpha) * n_d, math.cos(n_alpha) * n_d])
                corner = np.array([n_a, 0.0, 0.0])
            else:
                child, corner = np.array([0.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0])
            radius = (0.055, 0.05, 0.045, 0.042, 0.04, 0.038)[i]
            geom(
                body,
                "cylinder",
                size=[radius, radius * 0.9, 0],
                rgba=link_rgba[1],
                contype=0,
                conaffinity=0,
                mass=masses[i] * 0.3,
            )  # fmt: skip  (the joint's motor housing)
            for start, end in ((np.zeros(3), corner), (corner, child)):
                if np.linalg.norm(end - start) > 1e-6:
                    geom(body, "capsule", fromto=[*start, *end], size=[radius * 0.8, 0, 0], rgba=link_rgba[0],
                         contype=0, conaffinity=0, mass=masses[i] * 0.7 * np.linalg.norm(end - start) /
                         max(np.linalg.norm(corner) + np.linalg.norm(child - corner), 1e-6))  # fmt: skip
            if i == 5:
                geom(body, "sphere", size=[0.02, 0, 0], rgba=link_rgba[0], contype=0, conaffinity=0, mass=0.1)
            parent = body

        # The gripper on the flange (link6's frame, z pointing out of the flange).
        grip = parent.add_body(name="gripper", pos=[0, 0, 0], gravcomp=1)
        palm_rgba, finger_rgba, pad_rgba = [0.25, 0.25, 0.27, 1], [0.75, 0.75, 0.78, 1], [0.12, 0.12, 0.12, 1]
        geom(grip, "cylinder", size=[0.04, 0.01, 0], pos=[0, 0, 0.01], rgba=palm_rgba, contype=0, conaffinity=0,
             mass=0.1)  # fmt: skip
        geom(grip, "box", name="palm", size=[0.03, 0.065, 0.04], pos=[0, 0, 0.06], rgba=palm_rgba,
             contype=GRIP_TYPE, conaffinity=GRIP_AFFINITY, mass=0.6)  # fmt: skip
        grip.add_site(name="tcp", pos=[0, 0, TCP_OFFSET], size=[0.004, 0, 0], rgba=[1, 0, 0, 0.0])
        pad_z = TCP_OFFSET
        for side, sign in (("left", 1.0), ("right", -1.0)):
            finger = grip.add_body(name=f"finger_{side}_body", pos=[0, 0, 0], gravcomp=1)
            finger.add_joint(
                name=f"finger_{side}",
                type=mujoco.mjtJoint.mjJNT_SLIDE,
                axis=[0, sign, 0],
                range=[0.0, FINGER_OPEN],
                damping=5.0,
                armature=0.02,
            )
            geom(finger, "box", name=f"finger_{side}_link", size=[0.012, 0.006, 0.045],
                 pos=[0, sign * 0.014, pad_z - 0.03], rgba=finger_rgba, contype=GRIP_TYPE,
                 conaffinity=GRIP_AFFINITY, mass=0.05)  # fmt: skip
            geom(finger, "box", name=f"pad_{side}", size=[0.012, 0.004, 0.02], pos=[0, sign * 0.004, pad_z],
                 rgba=pad_rgba, contype=GRIP_TYPE, conaffinity=GRIP_AFFINITY, condim=6, mass=0.02,
                 friction=[1.5, 0.02, 0.002], solref=[0.005, 1], solimp=[0.95, 0.99, 0.001, 0.5, 2],
                 priority=1)  # fmt: skip
        # The wrist camera: on the palm's side, looking down past the fingers at the space between the pads.
        cam_pos = np.array([0.072, 0.0, 0.095])
        grip.add_camera(name="wrist", pos=cam_pos, xyaxes=_look_at(cam_pos, [0, 0, TCP_OFFSET + 0.05], [1, 0, 0]),
                        fovy=70)  # fmt: skip
        geom(grip, "box", size=[0.012, 0.02, 0.012], pos=[0.06, 0, 0.095], rgba=palm_rgba, contype=0,
             conaffinity=0, mass=0.02)  # fmt: skip

        # The cube and the bowl.
        cube = world.add_body(name="cube", pos=[0.4, 0.1, CUBE_HALF])
        cube.add_freejoint(name="cube")
        solid(cube, "box", name="cube", size=[CUBE_HALF] * 3, rgba=[0.85, 0.15, 0.12, 1], mass=0.05, condim=6,
              friction=[1.2, 0.02, 0.002], solref=[0.005, 1])  # fmt: skip
        bowl = world.add_body(name="bowl", pos=list(BOWL_POS))
        solid(bowl, "cylinder", name="bowl_floor", size=[BOWL_INNER_R + 0.008, BOWL_FLOOR / 2, 0],
              pos=[0, 0, BOWL_FLOOR / 2], rgba=[0.12, 0.35, 0.8, 1])  # fmt: skip
        segments = 16
        chord = 2 * (BOWL_INNER_R + 0.005) * math.tan(math.pi / segments) + 0.002
        for k in range(segments):
            angle = 2 * math.pi * k / segments
            r = BOWL_INNER_R + 0.004
            solid(bowl, "box", name=f"bowl_wall{k}", size=[0.004, chord / 2, BOWL_WALL_H / 2],
                  pos=[r * math.cos(angle), r * math.sin(angle), BOWL_WALL_H / 2],
                  quat=_yaw_quat(angle), rgba=[0.12, 0.35, 0.8, 1])  # fmt: skip

        # Environment camera: facing the arm from across the table, framed on the table's work area (the cube's
        # region and the bowl fill its width, so the 36 mm cube spans ~6 px of a 112 px image).
        env_pos = np.array([0.95, 0.0, 0.75])
        world.add_camera(name="env", pos=env_pos, xyaxes=_look_at(env_pos, [0.36, 0.0, 0.0], [0, 0, 1]), fovy=45)

        # Actuators: stiff position servos (an industrial arm), a force-limited gripper.
        for i, joint in enumerate(ARM_JOINTS):
            kp = 8000.0
            self._position(spec, self.actuators[i], joint, kp, forcerange=300.0)
        self._position(spec, "gripper", "finger_left", 3000.0, forcerange=40.0)
        spec.actuators[-1].ctrlrange = [0.0, FINGER_OPEN]
        spec.actuators[-1].ctrllimited = 1
        spec.add_equality(
            type=mujoco.mjtEq.mjEQ_JOINT,
            name1="finger_right",
            name2="finger_left",
            data=[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
        return spec.compile()

    @staticmethod
    def _position(spec: Any, name: str, joint: str, kp: float, forcerange: float) -> None:
        mujoco = mujoco_module()
        act = spec.add_actuator(name=name, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        gain = np.zeros(10)
        gain[0] = kp
        bias = np.zeros(10)
        bias[1] = -kp
        act.gainprm, act.biasprm = gain, bias
        act.forcelimited = 1
        act.forcerange = [-forcerange, forcerange]

    # ------------------------------------------------------------------------------------------------ episodes
    def _indices(self, model: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
        qpos = np.array([model.jnt_qposadr[model.joint(n).id] for n in self.joints])
        ctrl = np.array([model.actuator(n).id for n in self.actuators])
        cube = model.jnt_qposadr[model.joint("cube").id]
        right = model.jnt_qposadr[model.joint("finger_right").id]
        return qpos, ctrl, int(cube), int(right)

    def place(self, model: Any, data: Any, seed: int) -> Placement:
        mujoco = mujoco_module()
        mujoco.mj_resetData(model, data)
        qpos, ctrl, cube, right = self._indices(model)
        data.qpos[qpos] = self.home
        data.qpos[right] = self.home[-1]
        data.ctrl[ctrl] = self.home
        rng = np.random.default_rng(seed)
        x, y = rng.uniform(*CUBE_REGION[0]), rng.uniform(*CUBE_REGION[1])
        yaw = rng.uniform(-CUBE_YAW, CUBE_YAW)
        data.qpos[cube : cube + 7] = [x, y, CUBE_HALF + 0.0005, *_yaw_quat(yaw)]
        mujoco.mj_forward(model, data)
        return Placement(seed=seed, cube=(float(x), float(y), CUBE_HALF, float(yaw)), container=tuple(BOWL_POS))

    def success(self, model: Any, data: Any) -> bool:
        cube = data.body("cube")
        pos = cube.xpos
        offset = math.hypot(pos[0] - BOWL_POS[0], pos[1] - BOWL_POS[1])
        inside = offset < BOWL_INNER_R - 0.01 and pos[2] < BOWL_POS[2] + BOWL_FLOOR + CUBE_HALF + 0.02
        speed = float(np.linalg.norm(data.qvel[model.jnt_dofadr[model.joint("cube").id] :][:3]))
        return bool(inside and speed < 0.05 and not self._held(model, data))

    @staticmethod
    def _held(model: Any, data: Any) -> bool:
        """A finger touches the cube."""
        cube = model.geom("cube").id
        fingers = {model.geom(n).id for n in ("pad_left", "pad_right", "finger_left_link", "finger_right_link")}
        for k in range(data.ncon):
            pair = {int(data.contact[k].geom1), int(data.contact[k].geom2)}
            if cube in pair and pair & fingers:
                return True
        return False

    # ------------------------------------------------------------------------------------------------ planning
    def plan(self, model: Any, data: Any, rng: np.random.Generator) -> Trajectory:
        mujoco = mujoco_module()
        qpos, _ctrl, _cube, _right = self._indices(model)
        scratch = mujoco.MjData(model)
        scratch.qpos[:] = data.qpos
        mujoco.mj_forward(model, scratch)
        start = data.qpos[qpos].copy()
        cube = data.body("cube").xpos.copy()
        cube_yaw = _cube_yaw(data.body("cube").xmat.reshape(3, 3))
        # The fingers close across two faces of the cube: the face direction nearest the gripper's home heading.
        heading = _gripper_heading(model, scratch, self.home[:6], qpos)
        candidates = [cube_yaw + k * math.pi / 2 for k in range(4)]
        close_dir = min(candidates, key=lambda a: abs(_wrap(a - heading)))

        grip_z = cube[2] + rng.uniform(-0.004, 0.004)
        grasp = cube + np.array([*rng.normal(0.0, 0.003, 2), 0.0])
        grasp[2] = grip_z
        lift = rng.uniform(0.12, 0.18)
        bowl = np.array(BOWL_POS) + np.array([*rng.normal(0.0, 0.008, 2), 0.0])
        release_z = BOWL_FLOOR + CUBE_HALF + rng.uniform(0.02, 0.04)
        bowl_yaw = close_dir + rng.uniform(-0.3, 0.3)
        opened, closed = FINGER_OPEN, 0.0
        opened_approach = FINGER_OPEN * rng.uniform(0.8, 1.0)

        solver = _Ik(model, scratch, qpos)
        q = start[:6].copy()
        points: list[np.ndarray] = [start.copy()]
        times: list[float] = [0.0]
        events: dict[str, float] = {}
        speed = MAX_PLAN_SPEED * rng.uniform(0.5, 0.75)

        def move(q_to: np.ndarray, grip: float, min_s: float = 0.3) -> None:
            last = points[-1]
            dq = float(np.abs(q_to - last[:6]).max())
            dg = abs(grip - last[6])
            duration = max(dq / speed, dg / MAX_GRIPPER_SPEED, min_s) * rng.uniform(1.0, 1.15)
            points.append(np.array([*q_to, grip]))
            times.append(times[-1] + duration)

        def pause(lo: float, hi: float) -> None:
            points.append(points[-1].copy())
            times.append(times[-1] + rng.uniform(lo, hi))

        def line(a: np.ndarray, b: np.ndarray, yaw: float, grip: float, steps: int) -> np.ndarray:
            nonlocal q
            for s in range(1, steps + 1):
                q = solver.solve(a + (b - a) * s / steps, yaw, q)
                move(q, grip, min_s=0.05)
            return q

        pause(0.2, 0.6)
        top = grasp + np.array([0, 0, APPROACH_HEIGHT])  # one height to go down from, every time
        low = grasp + np.array([0, 0, LOW_HOVER])
        miss = aim_miss(rng)  # a rough aim, carried down and corrected just above the cube
        q = solver.solve(top + miss, close_dir, q)
        move(q, opened_approach, min_s=0.8)
        pause(0.05, 0.15)
        line(top + miss, low + miss, close_dir, opened_approach, 3)
        pause(0.1, 0.3)
        q = solver.solve(low, close_dir, q)
        move(q, opened_approach, min_s=0.4)
        pause(0.1, 0.2)
        line(low, grasp, close_dir, opened_approach, 3)
        pause(0.3, 0.5)  # down, and still, before closing
        move(q, closed, min_s=0.6)
        events["grasp"] = times[-1]
        pause(0.2, 0.4)
        line(grasp, grasp + np.array([0, 0, lift]), close_dir, closed, 5)
        over_bowl = np.array([bowl[0], bowl[1], release_z + rng.uniform(0.08, 0.12)])
        via = (grasp + over_bowl) / 2
        via[2] = max(grasp[2] + lift, over_bowl[2]) + 0.02
        q = solver.solve(via, (close_dir + bowl_yaw) / 2, q)
        move(q, closed, min_s=0.5)
        q = solver.solve(over_bowl, bowl_yaw, q)
        move(q, closed, min_s=0.5)
        pause(0.1, 0.3)
        line(over_bowl, np.array([bowl[0], bowl[1], release_z]), bowl_yaw, closed, 4)
        pause(0.1, 0.3)
        move(q, opened, min_s=0.6)
        events["release"] = times[-1]
        pause(0.1, 0.3)
        line(np.array([bowl[0], bowl[1], release_z]), np.array([bowl[0], bowl[1], release_z + 0.1]), bowl_yaw,
             opened, 3)  # fmt: skip
        move(np.array(self.home[:6]), opened, min_s=1.0)
        pause(0.3, 0.6)
        return Trajectory(times=np.array(times), points=np.array(points), events=events)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _cube_yaw(rot: np.ndarray) -> float:
    return math.atan2(rot[1, 0], rot[0, 0])


def _gripper_heading(model: Any, data: Any, arm: tuple[float, ...], qpos: np.ndarray) -> float:
    """The world yaw of the fingers' closing direction (the gripper's y axis) at arm pose `arm`."""
    mujoco = mujoco_module()
    saved = data.qpos.copy()
    data.qpos[qpos[:6]] = arm
    mujoco.mj_kinematics(model, data)
    y = data.site("tcp").xmat.reshape(3, 3)[:, 1]
    data.qpos[:] = saved
    mujoco.mj_kinematics(model, data)
    return math.atan2(y[1], y[0])


class _Ik:
    """Damped least squares on the TCP site: position plus orientation (the gripper pointing down, its fingers
    closing along world yaw `yaw`), on a scratch MjData."""

    def __init__(self, model: Any, data: Any, qpos: np.ndarray):
        self.mujoco = mujoco_module()
        self.model, self.data = model, data
        self.qpos = qpos[:6]
        self.dofs = np.array([model.jnt_dofadr[model.joint(n).id] for n in ARM_JOINTS])
        self.site = model.site("tcp").id
        lo = np.radians([-270, -117, -219, -270, -97, -270])  # the robot config's limits
        hi = np.radians([270, 116, 10, 270, 180, 270])
        self.lo, self.hi = lo, hi
        self.jacp, self.jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))

    def solve(self, target: np.ndarray, yaw: float, q0: np.ndarray, iterations: int = 200) -> np.ndarray:
        m, d = self.model, self.data
        z = np.array([0.0, 0.0, -1.0])
        y = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        want = np.column_stack([np.cross(y, z), y, z])
        q = np.array(q0, dtype=np.float64)
        for _ in range(iterations):
            d.qpos[self.qpos] = q
            self.mujoco.mj_kinematics(m, d)
            self.mujoco.mj_comPos(m, d)
            cur = d.site_xmat[self.site].reshape(3, 3)
            err_p = np.asarray(target) - d.site_xpos[self.site]
            err_r = 0.5 * sum(np.cross(cur[:, i], want[:, i]) for i in range(3))
            err = np.concatenate([err_p, 0.3 * err_r])
            if np.linalg.norm(err_p) < 2e-4 and np.linalg.norm(err_r) < 2e-3:
                break
            self.mujoco.mj_jacSite(m, d, self.jacp, self.jacr, self.site)
            jac = np.vstack([self.jacp[:, self.dofs], 0.3 * self.jacr[:, self.dofs]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            q = np.clip(q + dq, self.lo, self.hi)
        return q
