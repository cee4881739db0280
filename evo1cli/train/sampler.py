"""Which windows each training step reads, as a pure function of (seed, stage, step, micro-batch, rank).

Nothing about the data order has to be saved or replayed: a run resumed at step s draws exactly the
batches an uninterrupted run draws from step s on, in any number of DataLoader workers. Each window
comes with its own seed, which fixes its augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

# What a derived seed is for (its last component), so that the streams never coincide.
DATA, NOISE, DROPOUT = 0, 1, 2


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Micro-batches of `(window, augmentation seed)` for steps `start` .. `end - 1` of one process.

    Windows are drawn with replacement by `weights` (the mix of datasets), independently per step and
    per process, so processes see different data and the stream never needs an epoch boundary.
    """

    def __init__(
        self,
        weights: torch.Tensor,
        batch_size: int,
        seed: int,
        stage: int,
        rank: int = 0,
        accumulation: int = 1,
        start: int = 0,
        end: int = 0,
    ):
        self.weights = weights.double()
        self.batch_size = batch_size
        self.seed, self.stage, self.rank = seed, stage, rank
        self.accumulation = accumulation
        self.start, self.end = start, end

    def batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.stage, step, micro, self.rank, DATA))
        windows = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=generator)
        seeds = torch.randint(0, 2**62, (self.batch_size,), generator=generator)
        return list(zip(windows.tolist(), seeds.tolist(), strict=True))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.end):
            for micro in range(self.accumulation):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return max(0, self.end - self.start) * self.accumulation
