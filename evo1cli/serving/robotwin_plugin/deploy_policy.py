"""Evo-1 for RoboTwin 2.0, through `evo1 serve` (written by `evo1 bench robotwin --export-plugin`).

RoboTwin calls get_model(usr_args) once, eval(TASK_ENV, model, observation) at each step of its loop and
reset_model(model) between episodes. Each eval sends the 3 cameras (head, left, right) and the 14 joint
values to the server with the task's stats key, smooths the returned chunk over time with a Gaussian
kernel of 9 steps, and executes the first 37 actions with TASK_ENV.take_action (through the chunk broker
every evo1 loop uses). Needs numpy, msgpack and websockets in RoboTwin's environment; the client is the
`evo1_client` package next to this file.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evo1_client.broker import ChunkBroker
from evo1_client.chunks import Query
from evo1_client.remote import PolicyClient, RemotePolicy
from evo1_client.wire import DEFAULT_URL

CAMERAS = ("head_camera", "left_camera", "right_camera")


def gaussian_smooth(chunk: np.ndarray, kernel: int) -> np.ndarray:
    """Smooth (H, D) over time: a normalised Gaussian window of `kernel` steps (OpenCV's sigma for that
    size, 0.3 ((k - 1) / 2 - 1) + 0.8), edges replicated."""
    if kernel <= 1:
        return chunk
    sigma = 0.3 * ((kernel - 1) / 2 - 1) + 0.8
    offsets = np.arange(kernel) - (kernel - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    weights /= weights.sum()
    half = kernel // 2
    padded = np.pad(chunk, ((half, half), (0, 0)), mode="edge")
    return np.stack([weights @ padded[t : t + kernel] for t in range(len(chunk))]).astype(chunk.dtype)


def encode_obs(observation: dict) -> tuple[list[np.ndarray], np.ndarray]:
    images = [np.asarray(observation["observation"][name]["rgb"], dtype=np.uint8) for name in CAMERAS]
    state = np.asarray(observation["joint_action"]["vector"], dtype=np.float32)
    return images, state


class Evo1RoboTwin:
    def __init__(self, usr_args: dict):
        client = PolicyClient(usr_args.get("server_url", DEFAULT_URL), token=usr_args.get("token"))
        dataset = str(usr_args.get("dataset_key", "robotwin_{task_name}")).format(
            task_name=usr_args.get("task_name", "")
        )
        self.policy = RemotePolicy(client, usr_args.get("embodiment", "aloha_joint"), dataset)
        self.kernel = int(usr_args.get("smooth_kernel", 9))
        self.broker = ChunkBroker(self.policy, int(usr_args.get("execute_steps", 37)), prepare=self.smooth)

    def smooth(self, actions: np.ndarray) -> np.ndarray:
        return gaussian_smooth(np.asarray(actions, dtype=np.float64), self.kernel)

    def reset(self) -> None:
        self.broker.reset()


def get_model(usr_args: dict) -> Evo1RoboTwin:
    return Evo1RoboTwin(usr_args)


def eval(TASK_ENV, model: Evo1RoboTwin, observation: dict) -> None:  # RoboTwin calls it by these names
    """One chunk: a query, then its first `execute_steps` actions."""
    images, state = encode_obs(observation)
    query = Query(images, state, TASK_ENV.get_instruction())
    TASK_ENV.take_action(model.broker.act(lambda: query))
    while not model.broker.queue.due:
        TASK_ENV.take_action(model.broker.act(lambda: query))


def reset_model(model: Evo1RoboTwin) -> None:
    model.reset()
