"""Faithfulness against the authors' numbers in ../shared/compat (skips when ../shared is absent).

For every fixture in compat/index.json: our state_dict equals the authors' key/shape/dtype list in
order, and loading each strong golden's weights reproduces every case within 5e-5 * max|golden|.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dehazekit.backbones import create_backbone, list_backbones
from tests.conftest import SHARED
from tests.dehazekit.backbones import compat

INDEX = (
    json.loads((SHARED / "compat" / "index.json").read_text())
    if (SHARED / "compat").is_dir()
    else {"keys": [], "goldens": []}
)


def _require_registered(name: str) -> None:
    if name not in list_backbones():
        pytest.fail(f"backbone {name} has a compat fixture but is not registered")


@pytest.mark.parametrize("entry", INDEX["keys"], ids=lambda e: Path(e["file"]).stem)
def test_state_dict_layout_matches_authors(compat_dir, entry):
    _require_registered(entry["backbone"])
    expected = compat.read_keys(compat_dir, entry["file"])
    with torch.device("meta"):
        model = create_backbone(entry["backbone"], **entry["overrides"])
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    theirs = [[k, list(s), d] for k, s, d in expected["state_dict"]]
    assert [k for k, *_ in ours] == [k for k, *_ in theirs], "state_dict keys/order differ"
    assert ours == theirs
    if "params" in expected:
        assert sum(p.numel() for p in model.parameters()) == expected["params"]


def _run_cases(model, cases, stem):
    model.eval()
    # Goldens are the authors' raw forward; ours maps [0, 1] to their range around it.
    raw = getattr(model, "forward_raw", model)
    for case in cases:
        with torch.no_grad():
            out = raw(case["input"])
        golden = case["output"]
        err = float((out - golden).abs().max())
        assert err <= compat.tolerance(golden), f"{stem}{case['suffix']}: max err {err:.3g}"
        if case["extra"]:
            with torch.no_grad():
                scales = model.forward_scales(case["input"])
            for ours, theirs in zip(scales, case["extra"]):
                assert float((ours - theirs).abs().max()) <= compat.tolerance(theirs)


@pytest.mark.parametrize(
    "entry", [e for e in INDEX["goldens"] if not e.get("reparam")], ids=lambda e: Path(e["file"]).stem
)
def test_strong_golden_outputs(compat_dir, entry):
    _require_registered(entry["backbone"])
    stem = entry["file"]
    model = create_backbone(entry["backbone"], **entry["overrides"])
    weights, complete = compat.golden_weights(compat_dir, stem)
    model.load_state_dict(weights, strict=complete)
    cases, _, _ = compat.golden_cases(compat_dir, stem)
    _run_cases(model, cases, stem)


@pytest.mark.parametrize(
    "entry", [e for e in INDEX["goldens"] if e.get("reparam")], ids=lambda e: Path(e["file"]).stem
)
def test_reparameterisation_golden(compat_dir, entry):
    _require_registered(entry["backbone"])
    stem = entry["file"]
    train = create_backbone(entry["backbone"], **entry["overrides"])
    weights, _ = compat.golden_weights(compat_dir, stem, prefix="train_model.")
    train.load_state_dict(weights, strict=True)
    folded_expected, _ = compat.golden_weights(compat_dir, stem, prefix="folded_model.")
    cases, tensors, _ = compat.golden_cases(compat_dir, stem)
    deploy = train.eval().reparameterize()
    ours = deploy.state_dict()
    # safetensors stores keys sorted, so compare names as sets; the keys-file test pins the order.
    assert sorted(ours) == sorted(folded_expected)
    for key, value in folded_expected.items():
        assert torch.allclose(ours[key], value, atol=1e-5 * max(1.0, float(value.abs().max()))), key
    for case in cases:
        with torch.no_grad():
            y_train, y_deploy = train(case["input"]), deploy(case["input"])
        golden = tensors["output_train" + case["suffix"]]
        assert float((y_train - golden).abs().max()) <= compat.tolerance(golden)
        assert float((y_deploy - tensors["output_folded" + case["suffix"]]).abs().max()) <= compat.tolerance(
            golden
        )
