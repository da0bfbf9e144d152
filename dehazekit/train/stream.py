"""Where pretraining's batches come from, and how many steps fit a wall-time budget.

Haze synthesis runs in numpy on the CPU; on a GPU one process synthesises a 16 x 256 px batch in about
the time the GPU needs for several steps of gUNet-T, so the GPU waits. Worker processes keep batches
coming. With ``workers=0`` batches come from the run's own generator in process, which is the stream a
checkpoint restores exactly; with workers each worker draws from its own generator seeded by
(seed, start step, worker id), so a run is reproducible for a given worker count and resume point.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.utils.data

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8
BUDGET_WARMUP_STEPS = 5  # first steps include worker start-up and allocator growth
BUDGET_PROBE_STEPS = 20
BUDGET_MARGIN = 0.92  # validation and checkpoints also take time


def auto_workers(device: torch.device) -> int:
    """Worker processes for synthesis: none on the CPU (they would compete with training for the
    same cores), otherwise half the cores up to MAX_AUTO_WORKERS."""
    if device.type == "cpu":
        return 0
    return max(1, min(MAX_AUTO_WORKERS, (os.cpu_count() or 2) // 2))


class _BatchStream(torch.utils.data.IterableDataset):
    def __init__(self, data, batch_size: int, seed: int, start_step: int) -> None:
        self.data, self.batch_size, self.seed, self.start_step = data, batch_size, seed, start_step

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, self.start_step, info.id if info else 0])
        while True:
            hazy, clear, _ = self.data.batch(rng, self.batch_size)
            yield hazy, clear


def worker_batches(
    data, batch_size: int, seed: int, start_step: int, workers: int, pin: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless iterator of (hazy, clear) batches synthesised by ``workers`` processes."""
    loader = torch.utils.data.DataLoader(
        _BatchStream(data, batch_size, seed, start_step),
        batch_size=None,
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=4,
        persistent_workers=True,
    )
    return iter(loader)


class StepBudget:
    """Fits the step count to a wall-time budget from the measured step rate.

    After BUDGET_WARMUP_STEPS untimed steps, the next BUDGET_PROBE_STEPS are timed (data wait
    included); the total becomes what fits the remaining budget, never more than ``max_steps``.
    """

    def __init__(self, budget_s: float, max_steps: int, started: float | None = None) -> None:
        """``started``: perf_counter() when the run began (setup counts against the budget)."""
        self.budget_s, self.max_steps = float(budget_s), int(max_steps)
        self.started = time.perf_counter() if started is None else started
        self._probe_start: float | None = None

    def after_step(self, step: int) -> int | None:
        """Call after each step; returns the new total once, when the probe ends, else None."""
        if step == BUDGET_WARMUP_STEPS:
            self._probe_start = time.perf_counter()
        if self._probe_start is None or step != BUDGET_WARMUP_STEPS + BUDGET_PROBE_STEPS:
            return None
        per_step = (time.perf_counter() - self._probe_start) / BUDGET_PROBE_STEPS
        left = self.budget_s * BUDGET_MARGIN - (time.perf_counter() - self.started)
        total = int(min(self.max_steps, max(step + 1, step + left / per_step)))
        log.info("time budget %.0f s: %.3f s per step -> %d steps", self.budget_s, per_step, total)
        return total
