"""bench's GPU columns: NVML sampling (through a stand-in of the two NVML calls; no GPU here) and copy
times."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from dehazekit.runtimes.backends.overlap import OverlappedRunner
from dehazekit.runtimes.bench import _snapshot, gpu_columns
from dehazekit.runtimes.gpu_stats import GpuSampler
from tests.runtimes.test_overlap import HostCuda, doubling_launch


class FakeNvml:
    def __init__(self):
        self.calls = 0

    def nvmlDeviceGetUtilizationRates(self, handle):  # noqa: N802 - NVML's name
        self.calls += 1
        return SimpleNamespace(gpu=40 + 20 * (self.calls % 2))

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        return SimpleNamespace(used=(1000 + self.calls) * 2**20)


def test_sampler_reports_mean_utilisation_and_peak_memory():
    nvml = FakeNvml()
    with GpuSampler(interval=0.005, handle=object(), nvml=nvml) as sampler:
        time.sleep(0.1)
    summary = sampler.summary()
    assert nvml.calls >= 3
    assert 40 <= summary["gpu_util_pct"] <= 60
    assert summary["gpu_mem_peak_mb"] == 1000 + nvml.calls


def test_without_nvml_the_sampler_is_inert():
    sampler = GpuSampler(handle=None)
    sampler._handle = None
    with sampler:
        pass
    assert not sampler.available and sampler.summary() == {}


def test_copy_times_per_batch_cover_only_the_measured_run():
    cuda = HostCuda()
    backend = SimpleNamespace(runner=OverlappedRunner(cuda, np.float32, np.float32))
    x = np.zeros((1, 3, 2, 2), np.float32)
    backend.runner.collect(backend.runner.submit(x, doubling_launch(cuda)))  # warm-up, not counted
    before = _snapshot(backend)
    for _ in range(3):
        backend.runner.collect(backend.runner.submit(x, doubling_launch(cuda)))
    row = gpu_columns(backend, before, GpuSampler(handle=None))
    assert row == {"h2d_ms": 0.25, "d2h_ms": 0.25}
    assert gpu_columns(SimpleNamespace(), None, GpuSampler(handle=None)) == {}
