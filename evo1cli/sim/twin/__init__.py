"""Digital twins of the real setups: MuJoCo scenes that sit under the robots' own drivers.

`open_scene(robot, name)` gives a scene by name (each robot has a default scene, `DEFAULT_SCENE`), checked to
belong to the robot.
"""

from __future__ import annotations

from evo1cli.errors import Evo1Error
from evo1cli.sim.twin.scene import Scene

DEFAULT_SCENE = {"so100": "so100-cube-container", "xarm6": "xarm6-cube-bowl"}


def scene_names() -> list[str]:
    return sorted(DEFAULT_SCENE.values())


def open_scene(robot: str, name: str | None = None) -> Scene:
    """The scene `name` (default: the robot's), checked to belong to `robot`."""
    name = name or DEFAULT_SCENE.get(robot)
    if name == "so100-cube-container":
        from evo1cli.sim.twin.so100 import CubeContainer

        scene: Scene = CubeContainer()
    elif name == "xarm6-cube-bowl":
        from evo1cli.sim.twin.xarm6 import CubeBowl

        scene = CubeBowl()
    else:
        raise Evo1Error(f"unknown scene {name!r} (scenes: {', '.join(scene_names())})", field="--scene")
    if scene.robot != robot:
        raise Evo1Error(f"scene {name!r} is a {scene.robot} scene, not {robot}", field="--scene")
    return scene
