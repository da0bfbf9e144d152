"""dehazekit.adapt end to end on a tiny backbone: outputs, merge parity, adapter round trip, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dehazekit.adapt import AdaptConfig, adapt
from dehazekit.runtimes.errors import CheckpointMismatchError, ConfigError

BACKBONE = "tiny-gunet"  # 7 candidate blocks, fast on CPU


def _config(out: Path, **changes) -> AdaptConfig:
    base = dict(
        objective="dcp",
        weights="random",
        search_steps=4,
        finetune_steps=3,
        batch_size=2,
        size=32,
        seed=0,
        checkpoint_every=1,
        preview_count=2,
        out=str(out),
        lr_w=1e-3,
        lr_alpha=1e-2,
    )
    return AdaptConfig(**{**base, **changes})


class _Interrupt(Exception):
    pass


def _stop_at(stage: str, step: int):
    def callback(event: dict) -> None:
        if event["stage"] == stage and event["step"] == step:
            raise _Interrupt(f"{stage} {step}")

    return callback


def test_end_to_end_outputs_and_parity(hazy_dir: Path, tmp_path: Path) -> None:
    from dehazekit.backbones import create_backbone, forward_padded
    from dehazekit.lora import load_adapter
    from dehazekit.models import load_model

    (hazy_dir / "readme.txt").write_text("skip me")
    events: list[dict] = []
    result = adapt(hazy_dir, BACKBONE, _config(tmp_path / "out"), progress=events.append)
    out = tmp_path / "out"
    for name in (
        "adapter.json",
        "adapter.safetensors",
        "model.safetensors",
        "model.json",
        "report/summary.json",
        "report/gates.png",
        "report/loss.png",
        "report/before_after.png",
        "checkpoint/state.pt",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert [e["stage"] for e in events] == ["search"] * 4 + ["finetune"] * 3
    assert len(result.selected_blocks) == 3 and len(result.gates) == 7
    assert result.merge_max_abs_diff <= 1e-5
    info = json.loads((out / "adapter.json").read_text())
    assert sorted(info["blocks"]) == sorted(result.selected_blocks) and len(info["gates"]) == 7
    assert info["objective"] == "dcp" and info["seed"] == 0 and info["rank"] == 8
    assert info["data_digest"] == result.data_digest
    summary = json.loads((out / "report/summary.json").read_text())
    assert [Path(s["path"]).name for s in summary["data"]["skipped"]] == ["readme.txt"]
    assert set(summary["timings_s"]) >= {"load", "search", "finetune"}
    assert set(summary["data"]["split_w"]).isdisjoint(summary["data"]["split_alpha"])
    # Files on disk agree: merged model == base backbone + adapter, unmerged.
    merged = load_model(out)
    assert merged.dehazekit_meta.selected_blocks == result.selected_blocks
    assert merged.dehazekit_meta.adapter_digest == info["digest"]
    torch.manual_seed(0)
    base = create_backbone(BACKBONE)  # adapt seeds before building the random backbone
    load_adapter(base, out)
    x = torch.rand(2, 3, 40, 48)
    with torch.no_grad():
        assert torch.allclose(forward_padded(merged, x), forward_padded(base.eval(), x), atol=1e-5)
        assert not torch.allclose(forward_padded(merged, x), forward_padded(_fresh_base(), x), atol=1e-6)


def test_strength_ships_that_share_of_the_adapter_the_guard_judged_whole(
    hazy_dir: Path, tmp_path: Path
) -> None:
    from dehazekit.models import load_model

    results, merged = {}, {}
    for strength in (1.0, 0.5):
        out = tmp_path / f"s{strength}"
        results[strength] = adapt(hazy_dir, BACKBONE, _config(out, strength=strength, checkpoint_every=0))
        merged[strength] = load_model(out).state_dict()
        assert json.loads((out / "adapter.json").read_text())["strength"] == strength
    assert results[0.5].guard["checks"] == results[1.0].guard["checks"]  # same run, same verdicts
    base, moved = _fresh_base().state_dict(), 0
    for key, weight in base.items():
        if not weight.is_floating_point():
            continue
        half = weight + 0.5 * (merged[1.0][key] - weight)
        torch.testing.assert_close(merged[0.5][key], half, atol=1e-6, rtol=0)
        moved += not torch.equal(merged[1.0][key], weight)
    assert moved > 0


def _fresh_base():
    from dehazekit.backbones import create_backbone

    torch.manual_seed(0)
    return create_backbone(BACKBONE).eval()


def test_k_larger_than_candidates_fails_before_training(hazy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top-k"):
        adapt(hazy_dir, BACKBONE, _config(tmp_path / "out", top_k=8))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stage,step", [("search", 3), ("finetune", 2)])
def test_interrupted_run_resumes_to_the_same_result(
    hazy_dir: Path, tmp_path: Path, stage: str, step: int
) -> None:
    from safetensors.torch import load_file

    full = adapt(hazy_dir, BACKBONE, _config(tmp_path / "full"))
    with pytest.raises(_Interrupt):
        adapt(hazy_dir, BACKBONE, _config(tmp_path / "cut"), progress=_stop_at(stage, step))
    assert not (tmp_path / "cut" / "adapter.json").exists()
    resumed = adapt(hazy_dir, BACKBONE, _config(tmp_path / "cut", resume=True))
    assert resumed.resumed_from == {"stage": stage, "step": step - 1}
    assert resumed.selected_blocks == full.selected_blocks
    assert resumed.gates == full.gates
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)
    assert [h["loss"] for h in resumed.losses["finetune"]] == [h["loss"] for h in full.losses["finetune"]]


def test_resume_refuses_other_settings(hazy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(_Interrupt):
        adapt(hazy_dir, BACKBONE, _config(tmp_path / "out"), progress=_stop_at("search", 2))
    with pytest.raises(CheckpointMismatchError, match="seed"):
        adapt(hazy_dir, BACKBONE, _config(tmp_path / "out", resume=True, seed=1))


def test_weights_official_train_form_and_saved_model_folder(hazy_dir: Path, tmp_path: Path) -> None:
    from dehazekit.adapt.backbone import load_backbone
    from dehazekit.backbones import create_backbone

    torch.manual_seed(3)
    train_form = create_backbone("tiny-dea", form="train").eval()
    wrapped = {"model": {f"module.{k}": v for k, v in train_form.state_dict().items()}}
    torch.save(wrapped, tmp_path / "dea.pth")
    deploy = load_backbone(AdaptConfig(backbone="tiny-dea", weights=str(tmp_path / "dea.pth")))
    assert deploy.form == "deploy" and not any(p.requires_grad for p in deploy.parameters())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(deploy(x), train_form(x), atol=1e-5)
    # An adapt output folder is a valid --weights (adapting an adapted model); its backbone must match.
    first = adapt(hazy_dir, BACKBONE, _config(tmp_path / "first", search_steps=2, finetune_steps=1))
    again = load_backbone(AdaptConfig(backbone=BACKBONE, weights=str(first.out_dir)))
    assert again.backbone_name == BACKBONE
    with pytest.raises(ConfigError, match="does not match"):
        load_backbone(AdaptConfig(backbone="tiny-dea", weights=str(first.out_dir)))


@pytest.mark.parametrize("method", ["first-order", "unrolled", "reference"])
def test_every_hypergradient_option_runs(hazy_dir: Path, tmp_path: Path, method: str) -> None:
    result = adapt(
        hazy_dir,
        BACKBONE,
        _config(tmp_path / method, hypergrad=method, search_steps=2, finetune_steps=1, checkpoint_every=0),
    )
    info = json.loads((tmp_path / method / "adapter.json").read_text())
    assert info["hypergrad"] == method and len(result.selected_blocks) == 3
    assert any(abs(g - 0.5) > 1e-6 for g in result.gates.values())  # the gates did move
