"""aircons/airjoint contracts the airlight tests did not pin (found by benchmarks/mutants.py): the smallest
window its message allows is accepted, and inputs outside [0, 1] are read as their clipped versions."""

from __future__ import annotations

import pytest
import torch

from dehazekit.objectives.airlight import AirlightConsistency
from dehazekit.runtimes.errors import ConfigError


def test_the_smallest_odd_window_is_accepted_and_even_ones_are_not() -> None:
    AirlightConsistency(window=3)
    with pytest.raises(ConfigError, match="odd window"):
        AirlightConsistency(window=4)


@pytest.mark.parametrize("joint", [False, True])
def test_the_target_reads_inputs_outside_0_1_as_their_clipped_versions(joint: bool) -> None:
    # hazy and out are compared on the [0, 1] scale the network is clipped to; an overshoot (sensor, or an
    # output pushed out of range) must not move the airlight, the contrast gain or the target
    gen = torch.Generator().manual_seed(0)
    hazy = 0.3 + 0.6 * torch.rand(1, 3, 12, 12, generator=gen)
    out = torch.rand(1, 3, 12, 12, generator=gen)
    hazy_over, out_over = hazy.clone(), out.clone()
    hazy_over[..., :3, :] = 1.6
    out_over[..., 6:, :] = 1.8
    term = AirlightConsistency(window=5, joint=joint)
    for got, want in zip(
        term.target(hazy_over, out_over), term.target(hazy_over.clamp(0, 1), out_over.clamp(0, 1))
    ):
        torch.testing.assert_close(got, want)
