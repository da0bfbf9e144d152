"""Every backbone's forward takes [0, 1]; those whose authors used another range wrap forward_raw."""

import pytest
import torch

from dehazekit.backbones import create_backbone

CASES = {
    "tiny-gunet": lambda x: x * 2 - 1,
    "tiny-dehazeformer": lambda x: x * 2 - 1,
    "tiny-dehamer": lambda x: (
        (x - torch.tensor([0.64, 0.6, 0.58]).view(1, 3, 1, 1))
        / torch.tensor([0.14, 0.15, 0.152]).view(1, 3, 1, 1)
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_maps_unit_range_to_authors_range(name):
    model = create_backbone(name).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y, raw = model(x), model.forward_raw(CASES[name](x))
    expected = raw if name == "tiny-dehamer" else raw * 0.5 + 0.5
    assert torch.allclose(y, expected, atol=1e-6)
