"""xArm6 kinematics from UFACTORY's published modified-DH parameters (numpy only).

The twin builds its MJCF arm from `XARM6_MDH`; the simulated SDK (`evo1cli.robots.fakes.xarm`) answers
`get_forward_kinematics` with `xarm6_forward_kinematics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# xArm6 modified DH (UFACTORY "xArm kinematic parameters"): alpha(i-1) rad, a(i-1) mm, d(i) mm, theta offset rad.
_T2 = math.atan2(284.5, 53.5)
XARM6_MDH = (
    (0.0, 0.0, 267.0, 0.0),
    (-math.pi / 2, 0.0, 0.0, -_T2),
    (0.0, math.hypot(284.5, 53.5), 0.0, _T2),
    (-math.pi / 2, 77.5, 342.5, 0.0),
    (math.pi / 2, 0.0, 0.0, 0.0),
    (-math.pi / 2, 76.0, 97.0, 0.0),
)


def mdh_transform(alpha: float, a: float, d: float, theta: float) -> np.ndarray:
    """The 4x4 modified-DH transform of one link (lengths in the units of `a` and `d`)."""
    ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
    return np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -sa * d], [st * sa, ct * sa, ca, ca * d], [0, 0, 0, 1]])


def xarm6_flange(joints_deg: Sequence[float]) -> np.ndarray:
    """The flange's 4x4 pose in the base frame (mm) at joint angles in degrees."""
    pose = np.eye(4)
    for (alpha, a, d, offset), q in zip(XARM6_MDH, joints_deg, strict=False):
        pose = pose @ mdh_transform(alpha, a, d, math.radians(q) + offset)
    return pose


def xarm6_forward_kinematics(joints_deg: Sequence[float]) -> list[float]:
    """Flange pose [x, y, z (mm), roll, pitch, yaw (deg)] of an xArm6, as `get_forward_kinematics` reports it."""
    pose = xarm6_flange(joints_deg)
    r = pose[:3, :3]
    roll = math.atan2(r[2, 1], r[2, 2])
    pitch = math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0]))
    yaw = math.atan2(r[1, 0], r[0, 0])
    angles = (math.degrees(v) for v in (roll, pitch, yaw))
    return [*(float(v) for v in pose[:3, 3]), *(a + 360 if a <= -180 + 1e-9 else a for a in angles)]  # (-180, 180]
