"""What each camera view looks like, to notice a view that is not what the policy was trained on.

A view's fingerprint is the mean of its frames, shrunk to `GRID` x `GRID` cells of mean RGB (0..1): where the
table, the arm, the gripper's jaws sit in the picture and their colours. Training keeps the fingerprint of each
view slot's camera (`views.json` in every checkpoint); a deployment computes the live one of each camera and
`compare` says, per camera, whether it matches its own slot, looks like another slot's camera (cameras swapped
between slots) or like its own with the colour channels reversed (RGB/BGR mixed up between recording and
deployment).

    trained = dataset_fingerprints(meta, ["observation.images.front", "observation.images.wrist"])
    live = FingerprintMean(); live.add(frame) ...; live.value()
    findings = compare(trained, [live_front, live_wrist], names=["front", "wrist"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from evo1cli.data.types import DatasetMeta
from evo1cli.data.video import FrameReader

VIEWS_FILE = "views.json"  # in every checkpoint evo1 trains: {"<embodiment>/<dataset>": {views, fingerprints}}
GRID = 8
SAMPLES = 24  # frames decoded per view at training time
MARGIN = 0.6  # a candidate explains a view when its distance is under MARGIN x the distance to its own slot
NOISE = 0.04  # distances below this (mean absolute difference, 0..1) are a match whatever else is closer


def fingerprint(frame: np.ndarray) -> np.ndarray:
    """(GRID, GRID, 3) mean RGB in 0..1 of an RGB uint8 frame."""
    return cv2.resize(frame, (GRID, GRID), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0


class FingerprintMean:
    """The running mean fingerprint of a camera's frames."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        f = fingerprint(frame)
        self.total = f if self.total is None else self.total + f
        self.count += 1

    def value(self) -> np.ndarray | None:
        return None if self.total is None else self.total / self.count


def dataset_fingerprints(
    meta: DatasetMeta, views: Sequence[str | None], samples: int = SAMPLES, seed: int = 0
) -> list[list[float] | None]:
    """The mean fingerprint of each view's camera over `samples` frames spread over the dataset (None for an
    empty slot), as nested lists for JSON."""
    rng = np.random.default_rng(seed)
    reader = FrameReader()
    picks = [
        (int(e), int(rng.integers(meta.episodes[e].length))) for e in rng.integers(len(meta.episodes), size=samples)
    ]
    out: list[list[float] | None] = []
    for view in views:
        if view is None:
            out.append(None)
            continue
        mean = FingerprintMean()
        for episode, frame in picks:
            span = meta.episodes[episode].videos[view]
            mean.add(reader.read(meta.video_file(view, episode), span.start + frame / meta.fps))
        value = mean.value()
        out.append(None if value is None else np.round(value, 4).tolist())
    return out


def compare(trained: Sequence[Any], live: Sequence[np.ndarray | None], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per camera (slot order): {"camera", "match": "ok" | "swapped" | "colours reversed" | "unknown",
    "looks_like" (the slot it resembles), "distance" (to its own slot)}."""
    slots = [None if t is None else np.asarray(t, dtype=np.float64) for t in trained]
    views = list(live[: len(names)])

    def distance(i: int, j: int, flip: bool = False) -> float | None:
        """Mean absolute difference of live view i (its channels reversed with `flip`) and slot j's fingerprint."""
        view, slot = views[i], slots[j] if j < len(slots) else None
        if view is None or slot is None or slot.shape != view.shape:
            return None
        return float(np.abs((view[..., ::-1] if flip else view) - slot).mean())

    d = [[distance(i, j) for j in range(len(slots))] + [None] * (len(views) - len(slots)) for i in range(len(views))]
    flipped = [distance(i, i, flip=True) for i in range(len(views))]
    findings = []
    for i, name in enumerate(names[: len(views)]):
        d_own = d[i][i]
        if d_own is None:
            findings.append({"camera": name, "match": "unknown", "looks_like": None, "distance": None})
            continue
        candidates = {("colours reversed", i): flipped[i]}
        candidates.update({("swapped", j): dj for j, dj in enumerate(d[i]) if j != i and dj is not None})
        (kind, slot), best = min(candidates.items(), key=lambda item: item[1])
        match = kind if d_own > NOISE and best < MARGIN * d_own else "ok"
        findings.append({
            "camera": name,
            "match": match,
            "looks_like": slot if match == "swapped" else i,
            "distance": round(d_own, 4),
        })  # fmt: skip
    _jointly(d, flipped, findings)
    return findings


def _jointly(d: list[list[float | None]], flipped: list[float | None], findings: list[dict[str, Any]]) -> None:
    """The cameras taken together, for what each alone leaves ambiguous (two views of one table; a policy that
    behaves differently shows its wrist camera other things than in training). `d[i][j]`: live camera i against
    slot j; `flipped[i]`: camera i with its channels reversed against its own slot.
    - all colours reversed when reversing every camera's channels explains them all much better than as they
      are: sum flipped[i] < MARGIN x sum d[i][i] (one driver delivers every camera);
    - cameras i and j swapped when the crossed assignment explains both much better than the straight one:
      d[i][j] + d[j][i] < MARGIN x (d[i][i] + d[j][j])."""
    known = [i for i in range(len(findings)) if d[i][i] is not None]
    straight = sum(d[i][i] for i in known)
    if len(known) > 1 and straight > len(known) * NOISE and sum(flipped[i] for i in known) < MARGIN * straight:
        for i in known:
            findings[i].update(match="colours reversed", looks_like=i)
        return
    for i in known:
        for j in known:
            reversed_ = "colours reversed" in (findings[i]["match"], findings[j]["match"])
            if j <= i or reversed_ or d[i][j] is None or d[j][i] is None:
                continue
            own, crossed = d[i][i] + d[j][j], d[i][j] + d[j][i]
            if own > 2 * NOISE and crossed < MARGIN * own:
                findings[i].update(match="swapped", looks_like=j)
                findings[j].update(match="swapped", looks_like=i)
