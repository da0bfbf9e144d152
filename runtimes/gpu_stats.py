"""GPU utilisation and memory while a measurement runs, through NVML (pynvml) when it is installed.

Used by ``dehazekit bench``: a background thread samples ``nvmlDeviceGetUtilizationRates`` so the report can
say whether the GPU was kept busy (an end-to-end run that leaves the GPU idle between batches shows it here
before it shows in fps). Without pynvml or a GPU the sampler is inert and reports nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


def _nvml_handle(device_index: int) -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(device_index)
    except Exception as exc:  # NVMLError has many subclasses; any of them means "no GPU stats"
        log.info("no GPU statistics: %s", exc)
        return None


class GpuSampler:
    """Context manager sampling GPU utilisation (%) and used memory (MiB) every ``interval`` seconds."""

    def __init__(self, device_index: int = 0, interval: float = 0.05, handle: Any = None, nvml: Any = None):
        self.interval = interval
        self._handle = handle if handle is not None else _nvml_handle(device_index)
        self._nvml = nvml
        self.util: list[float] = []
        self.memory_mb: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _sample(self) -> None:
        nvml = self._nvml
        if nvml is None:
            import pynvml as nvml
        while not self._stop.wait(self.interval):
            self.util.append(float(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
            self.memory_mb.append(nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20)

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._sample, name="dehazekit-nvml", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, float]:
        """Mean utilisation and peak memory; empty when nothing was sampled."""
        if not self.util:
            return {}
        return {"gpu_util_pct": sum(self.util) / len(self.util), "gpu_mem_peak_mb": max(self.memory_mb)}
