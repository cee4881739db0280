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
    findings = []
    for i, (name, view) in enumerate(zip(names, live, strict=False)):
        own = slots[i] if i < len(slots) else None
        if view is None or own is None or own.shape != view.shape:
            findings.append({"camera": name, "match": "unknown", "looks_like": None, "distance": None})
            continue
        d_own = float(np.abs(view - own).mean())
        candidates = {("colours reversed", i): float(np.abs(view[..., ::-1] - own).mean())}
        for j, other in enumerate(slots):
            if j != i and other is not None and other.shape == view.shape:
                candidates[("swapped", j)] = float(np.abs(view - other).mean())
        (kind, slot), best = min(candidates.items(), key=lambda item: item[1])
        match = kind if d_own > NOISE and best < MARGIN * d_own else "ok"
        findings.append({
            "camera": name,
            "match": match,
            "looks_like": slot if match == "swapped" else i,
            "distance": round(d_own, 4),
        })  # fmt: skip
    _jointly(slots, live, findings)
    return findings


def _jointly(
    slots: Sequence[np.ndarray | None], live: Sequence[np.ndarray | None], findings: list[dict[str, Any]]
) -> None:
    """The cameras taken together, for what each alone leaves ambiguous (two views of one table; a policy that
    behaves differently shows its wrist camera other things than in training):
    - all colours reversed when reversing every camera's channels explains them all much better than as they
      are: sum d(reversed i, i) < MARGIN x sum d(i, i) (one driver delivers every camera);
    - cameras i and j swapped when the crossed assignment explains both much better than the straight one:
      d(i, j) + d(j, i) < MARGIN x (d(i, i) + d(j, j))."""

    def distance(i: int, j: int, flip: bool = False) -> float | None:
        view, slot = live[i] if i < len(live) else None, slots[j] if j < len(slots) else None
        if view is None or slot is None or slot.shape != view.shape:
            return None
        return float(np.abs((view[..., ::-1] if flip else view) - slot).mean())

    known = [i for i in range(len(findings)) if distance(i, i) is not None]
    straight = sum(distance(i, i) or 0.0 for i in known)
    flipped = sum(distance(i, i, flip=True) or 0.0 for i in known)
    if len(known) > 1 and straight > len(known) * NOISE and flipped < MARGIN * straight:
        for i in known:
            findings[i].update(match="colours reversed", looks_like=i)
        return
    for i in range(len(findings)):
        for j in range(i + 1, len(findings)):
            if {findings[i]["match"], findings[j]["match"]} & {"colours reversed", "unknown"}:
                continue
            d = [distance(i, i), distance(j, j), distance(i, j), distance(j, i)]
            if None in d:
                continue
            own, crossed = d[0] + d[1], d[2] + d[3]
            if own > 2 * NOISE and crossed < MARGIN * own:
                findings[i].update(match="swapped", looks_like=j)
                findings[j].update(match="swapped", looks_like=i)
