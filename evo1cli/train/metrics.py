"""Where training metrics go: `metrics.jsonl`, TensorBoard event files and, when asked for, wandb.

On resume, everything logged after the checkpoint being resumed is dropped (jsonl lines truncated,
TensorBoard events purged), so the logs read as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evo1cli.errors import Evo1Error
from evo1cli.fileio import atomic_write_text

METRICS_FILE = "metrics.jsonl"


def read_metrics(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything before it stands
    return rows


class MetricsLog:
    def __init__(
        self,
        stage_dir: Path,
        start_step: int,
        tensorboard: bool,
        wandb: bool,
        wandb_project: str,
        run_name: str,
        config: dict[str, Any],
    ):
        self.path = stage_dir / METRICS_FILE
        kept = [r for r in read_metrics(stage_dir) if r.get("step", 0) <= start_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(stage_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self._wandb = None
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError:
                raise Evo1Error("wandb is not installed (pip install wandb)", field="logging.wandb") from None
            self._wandb = wandb_module.init(
                project=wandb_project, name=run_name, config=config, dir=str(stage_dir), resume="allow"
            )

    def log(self, step: int, values: dict[str, Any]) -> None:
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(f"train/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in numbers.items()}, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
