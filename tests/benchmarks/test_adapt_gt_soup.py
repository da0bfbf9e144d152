"""The soup of benchmarks/adapt_gt_soup.py: the mean of the runs' weights, integer buffers untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from adapt_gt_soup import average_weights, summary_table  # noqa: E402


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


def test_the_table_counts_only_changes_beyond_the_bound() -> None:
    runs = {"1": {"0.5": -0.1, "0.75": -0.11, "1.0": 0.2}, "2": {"0.5": 0.3, "0.75": 0.1, "1.0": -0.4}}
    table = summary_table(
        {"task": "t", "single": runs, "soup": {"1+2": {"0.5": 0.1, "0.75": 0.0, "1.0": 0.0}}}
    )
    assert "| 0.5 | +0.100 / -0.10 / 0 of 2 | +0.100 / +0.10 / 0 of 1 |" in table
    assert "| 0.75 | -0.005 / -0.11 / 1 of 2 |" in table and "| 1 | -0.100 / -0.40 / 1 of 2 |" in table
