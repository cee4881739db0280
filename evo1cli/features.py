"""The LeRobot feature names evo1 reads and writes, and the width state and action vectors are padded to.

These are shared by the datasets (`evo1cli.data`), the model's stats, the recorders, the server and the
checkpoint converters; this module imports nothing, so every package may import it.
"""

STATE = "observation.state"  # the robot state vector of each frame
ACTION = "action"  # the command vector of each frame
IMAGE_PREFIX = "observation.images."  # a camera's frames are the video feature IMAGE_PREFIX + its name
MAX_DIM = 24  # state and action vectors are zero-padded to this many dims: the model's default width and its bound


def image_key(camera: str) -> str:
    """The dataset feature of a camera's frames."""
    return IMAGE_PREFIX + camera
