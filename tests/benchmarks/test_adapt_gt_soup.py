"""The soup of benchmarks/adapt_gt_soup.py: the mean of the runs' weights, integer buffers untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_soup import average_weights  # noqa: E402


def _net(fill: float, count: int) -> torch.nn.Module:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(fill)
    net[1].num_batches_tracked.fill_(count)
    return net


def test_the_soup_is_the_mean_of_the_weights_and_leaves_the_inputs_alone() -> None:
    a, b = _net(1.0, 3), _net(3.0, 8)
    soup = average_weights([a, b])
    assert all(torch.equal(p, torch.full_like(p, 2.0)) for p in soup.parameters())
    assert soup[1].num_batches_tracked.dtype == torch.long and int(soup[1].num_batches_tracked) == 3
    assert all(torch.equal(p, torch.full_like(p, 1.0)) for p in a.parameters())
