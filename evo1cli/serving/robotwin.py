"""`evo1 bench robotwin --export-plugin DIR`: a RoboTwin 2.0 policy folder that talks to `evo1 serve`.

RoboTwin needs SAPIEN with a GPU renderer, so the evaluation itself runs on a GPU machine; what evo1
ships is the plug-in (robotwin_plugin/: deploy_policy.py with get_model / eval / reset_model, eval.sh,
a README) plus its deploy_policy.yml and a copy of the light client package `evo1cli.client` (as
`evo1_client/`, every module of it: they need only numpy, msgpack and websockets).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from evo1cli.client import wire
from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_directory

PLUGIN = Path(__file__).parent / "robotwin_plugin"
CLIENT = Path(wire.__file__).parent  # the light client package, shipped whole
EXECUTE_STEPS = 37  # the authors' RoboTwin protocol
SMOOTH_KERNEL = 9


def export_plugin(
    out: str | Path,
    server_url: str = wire.DEFAULT_URL,
    token: str | None = None,
    embodiment: str = "aloha_joint",
    dataset_key: str = "robotwin_{task_name}",
    execute_steps: int = EXECUTE_STEPS,
    smooth_kernel: int = SMOOTH_KERNEL,
) -> Path:
    out = Path(out)
    if out.exists():
        raise Evo1Error("already exists; choose a new directory", path=out)
    if execute_steps < 1 or smooth_kernel < 1 or smooth_kernel % 2 == 0:
        raise Evo1Error("--execute must be >= 1 and the smoothing kernel odd", field="options")
    settings = {
        "policy_name": "evo1",
        "server_url": server_url,
        "token": token,
        "embodiment": embodiment,
        "dataset_key": dataset_key,
        "execute_steps": execute_steps,
        "smooth_kernel": smooth_kernel,
        "task_name": None,  # filled in by RoboTwin's --overrides
        "task_config": None,
        "ckpt_setting": None,
        "instruction_type": "unseen",
    }
    with atomic_directory(out) as staging:
        for name in ("deploy_policy.py", "eval.sh", "README.md"):
            shutil.copy2(PLUGIN / name, staging / name)
        (staging / "deploy_policy.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
        client = staging / "evo1_client"
        client.mkdir()
        for source in sorted(CLIENT.glob("*.py")):
            shutil.copy2(source, client / source.name)
    return out
