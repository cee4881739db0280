"""Shared printing helpers for commands: Rich for people, JSON for machines."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(highlight=False, soft_wrap=True)  # paths stay on one line when piped
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # progress notes: stdout stays clean for --json


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar (on stderr, so JSON on stdout stays clean); yields `update(done, total)`."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
