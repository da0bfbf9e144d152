"""Data-parallel adaptation with torchrun (gloo, CPU, 2 processes) equals one process on the same global
batch: gates within fp tolerance, identical selection, LoRA weights close; a single-process checkpoint
resumes under 2 processes to the same result; rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dehazekit.adapt import AdaptConfig, adapt
from dehazekit.adapt.distributed import Dist, check_batch_size, shard
from dehazekit.runtimes.errors import ConfigError
from tests.dehazekit.adapt.conftest import write_hazy_images

STEPS = {"search_steps": 3, "finetune_steps": 2}
CLI = [
    "--backbone",
    "tiny-gunet",
    "--weights",
    "random",
    "--objective",
    "dcp",
    "--search-steps",
    "3",
    "--finetune-steps",
    "2",
    "--batch-size",
    "4",
    "--size",
    "32",
    "--seed",
    "0",
    "--lr-w",
    "1e-3",
    "--lr-alpha",
    "1e-2",
    "--checkpoint-every",
    "1",
]


def _config(out: Path) -> AdaptConfig:
    return AdaptConfig(
        backbone="tiny-gunet",
        weights="random",
        objective="dcp",
        batch_size=4,
        size=32,
        seed=0,
        lr_w=1e-3,
        lr_alpha=1e-2,
        checkpoint_every=1,
        out=str(out),
        **STEPS,
    )


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(image folder, outputs of the single-process reference run)."""
    root = tmp_path_factory.mktemp("dist")
    write_hazy_images(root / "hazy", 6)
    adapt(root / "hazy", config=_config(root / "single"))
    return root / "hazy", root / "single"


def _assert_same(ours: Path, reference: Path) -> None:
    a, b = (
        json.loads((ours / "adapter.json").read_text()),
        json.loads((reference / "adapter.json").read_text()),
    )
    assert a["selected_order"] == b["selected_order"]
    assert a["gates"].keys() == b["gates"].keys()
    for block, gate in b["gates"].items():
        assert a["gates"][block] == pytest.approx(gate, abs=1e-6), block
    wa, wb = load_file(ours / "adapter.safetensors"), load_file(reference / "adapter.safetensors")
    assert wa.keys() == wb.keys()
    for name in wb:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-6)
    la = json.loads((ours / "report" / "summary.json").read_text())["losses"]
    lb = json.loads((reference / "report" / "summary.json").read_text())["losses"]
    for stage in ("search", "finetune"):  # rank-averaged losses are the global-batch losses
        assert [s.get("lower_loss", s.get("loss")) for s in la[stage]] == pytest.approx(
            [s.get("lower_loss", s.get("loss")) for s in lb[stage]], rel=1e-5
        )


def test_two_processes_equal_one_on_the_global_batch(single, tmp_path):
    hazy, reference = single
    _run(
        [
            "-m",
            "dehazekit",
            "adapt",
            "--images",
            str(hazy),
            "--out",
            str(tmp_path / "two"),
            *CLI,
            "--nproc",
            "2",
        ],
        tmp_path,
    )
    _assert_same(tmp_path / "two", reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]  # no stray files from rank 1


def test_a_one_process_checkpoint_resumes_under_two_processes(single, tmp_path):
    hazy, reference = single
    out = tmp_path / "resumed"

    def stop(event: dict) -> None:
        if event["stage"] == "search" and event["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapt(hazy, config=_config(out), progress=stop)
    _run(
        [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "dehazekit",
            "adapt",
            "--images",
            str(hazy),
            "--out",
            str(out),
            *CLI,
            "--resume",
        ],
        tmp_path,
    )
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["resumed_from"] == {
        "stage": "search",
        "step": 1,
    }  # step 2 was interrupted before its checkpoint
    _assert_same(out, reference)


def test_sharding_and_batch_size_checks():
    batch = torch.arange(8.0).view(4, 2)
    assert torch.equal(torch.cat([shard(batch, Dist(r, 2)) for r in range(2)]), batch)
    assert shard(batch, Dist()) is batch
    with pytest.raises(ConfigError, match="divisible"):
        check_batch_size(4, Dist(0, 3))
