"""Pretraining's batch workers and wall-time budget: real worker processes, real step timing."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from dehazekit.data.images import write_image
from dehazekit.runtimes.errors import ConfigError
from dehazekit.train import stream
from dehazekit.train.pretrain import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def clear_dir(tmp_path_factory):
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("clear")
    for i in range(4):
        write_image(folder / f"im{i}.png", rng.uniform(0, 1, (40, 48, 3)))
    return folder


def _cfg(clear_dir, out, **kw):
    base = dict(
        clear=clear_dir, backbone="tiny-gunet", out=out, steps=8, crop=24, batch_size=2, val_every=4,
        ckpt_every=4, val_count=1, val_size=24, max_side=48, progress=False, val_fraction=0.25,
    )  # fmt: skip
    return PretrainConfig(**{**base, **kw})


def _data(clear_dir):
    from dehazekit.data.datasets import PairedHaze
    from dehazekit.data.images import list_images

    return PairedHaze(list_images(clear_dir, "clear"), ["homogeneous"], 24, 48)


def test_worker_stream_is_reproducible_and_differs_by_resume_point(clear_dir):
    data = _data(clear_dir)
    take = lambda start: [h for h, _ in itertools.islice(
        stream.worker_batches(data, 2, seed=3, start_step=start, workers=2, pin=False), 4)]  # fmt: skip
    first, again, resumed = take(0), take(0), take(10)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(first[0], resumed[0])
    assert not torch.equal(first[0], first[1])  # the two workers draw different crops


def test_pretrain_with_workers_trains_and_keeps_a_model(clear_dir, tmp_path):
    result = pretrain(_cfg(clear_dir, tmp_path / "w", workers=2))
    assert result.step == 8 and (tmp_path / "w" / "model.safetensors").is_file()


def test_auto_workers_is_zero_on_cpu_and_positive_on_a_gpu():
    assert stream.auto_workers(torch.device("cpu")) == 0
    assert 1 <= stream.auto_workers(torch.device("cuda")) <= stream.MAX_AUTO_WORKERS


def test_time_budget_fits_the_steps_and_completes_the_cosine(clear_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BUDGET_WARMUP_STEPS", 1)
    monkeypatch.setattr(stream, "BUDGET_PROBE_STEPS", 2)
    out = tmp_path / "b"
    result = pretrain(_cfg(clear_dir, out, steps=100_000, time_budget_s="2s", val_every=100_000))
    assert 3 < result.step < 100_000  # the budget, not --steps, ended the run
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["total"] == result.step
    # the schedule was refitted: the last lr is the cosine's floor, not a step early in a 100k cosine
    assert ck["sched"]["_last_lr"][0] == pytest.approx(0.02 * 5e-4, rel=1e-3)
    hist = json.loads((out / "history.json").read_text())
    assert hist["history"][-1]["step"] == result.step  # validated at the fitted end


def test_bad_budget_and_workers_give_one_config_error(clear_dir, tmp_path):
    for bad in ({"time_budget_s": "soon"}, {"time_budget_s": 0}, {"workers": -1}):
        with pytest.raises(ConfigError):
            _cfg(clear_dir, tmp_path, **bad)
