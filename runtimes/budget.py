"""CPU-thread and memory budgets for a run: how many inference threads, when to tile, how large a tile.

Threads: the pipeline decodes and encodes on its own threads (PyAV/x264 add theirs for video). Giving
onnxruntime every core as well oversubscribes the CPU: on a 2-core box a 200-frame video ran at 1.6 fps
with onnxruntime's default thread count and 4.4-5.9 fps with one intra-op thread (benchmarks/threads.py).
So inference gets the cores left after the pipeline's own threads, at least one.

Memory: a dehazing network's activations grow with the frame's pixel count. The cost per pixel is
measured once on a small probe (peak resident memory, Linux) and scaled; frames whose estimate exceeds
the budget run as overlapping tiles (the seam-free blend of ``--tile``) of the largest side that fits.
The probe alone under-predicts large frames (an 8.5 MP photo estimated at 7.0-8.5 GB peaked at 9.4 GB:
onnxruntime's arena grows in power-of-two chunks), hence ESTIMATE_MARGIN and the cap on automatic tiles.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dehazekit.runtimes.errors import ConfigError

log = logging.getLogger(__name__)

PIPELINE_THREADS = {"video": 2, "stream": 2, "camera": 2}  # decode + encode; images need one for both
DEFAULT_PIPELINE_THREADS = 1
MEMORY_FRACTION = 0.5  # of the memory available when the run starts: room for decode/encode and the OS
PROBE_SIDE = 256
FALLBACK_BYTES_PER_PIXEL = 2000.0  # used where peak memory cannot be measured (no /proc); above measured
MIN_TILE = 128
# Automatic tiles stay at or below this side: onnxruntime's CPU arena grows in power-of-two chunks, and with
# tiles of 2560 px an 8.5 MP photo peaked at 12.6 GB, above the 9.4 GB of the whole frame
# (benchmarks/memory.py)
MAX_AUTO_TILE = 1536
ESTIMATE_MARGIN = 1.35  # measured whole-frame peak / probe estimate on the 8.5 MP photo: 9.4 / 7.0
# whole-frame buffers beside the network, per pixel: uint8 in and out (3 + 3), float32 batch, padded copy,
# tiled output (12 each) and the blend weights (4); they exist whether or not the frame is tiled
FRAME_BYTES_PER_PIXEL = 46
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def cpu_cores() -> int:
    """Cores this process may run on (affinity/cgroup-aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def inference_threads(
    source_kind: str, requested: int | None = None, cores: int | None = None
) -> tuple[int, str]:
    """(intra-op threads, why): ``requested`` wins; else the cores left after decode/encode, >= 1."""
    if requested is not None:
        if requested < 1:
            raise ConfigError.build("--threads must be >= 1", got=requested)
        return requested, "as requested"
    cores = cores or cpu_cores()
    reserved = PIPELINE_THREADS.get(source_kind, DEFAULT_PIPELINE_THREADS)
    threads = max(1, cores - reserved)
    return threads, f"{cores} cores - {reserved} for decode/encode"


# --- memory ---------------------------------------------------------------------------------------
def parse_memory(text: str | float | None) -> int | None:
    """'4G', '512M', '2GiB', a byte count -> bytes; 'off'/'none' -> None (no automatic tiling)."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else int(text)
    value = text.strip().lower()
    if value in ("off", "none", "0"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([kmgt]i?)?b?", value)
    if not match:
        raise ConfigError.build("unreadable memory size", got=text, expected="e.g. 4G, 512M, 2GiB, off")
    return int(float(match[1]) * _UNITS[match[2] or ""])


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def _address_space_left() -> int | None:
    """Room left under an address-space limit (ulimit -v), which fails allocations long before RAM runs
    out."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = _status_bytes("VmSize") or 0
    return max(soft - used, 0)


def available_memory() -> int | None:
    """Bytes this process can still use: MemAvailable, capped by a cgroup limit (containers) and ulimit -v."""
    values = [v for v in (_meminfo_available(), _cgroup_limit(), _address_space_left()) if v is not None]
    return min(values) if values else None


def default_budget() -> int | None:
    available = available_memory()
    return int(available * MEMORY_FRACTION) if available else None


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure_bytes_per_pixel(run: Callable[[np.ndarray], object], side: int = PROBE_SIDE) -> float:
    """Peak memory one (1, 3, side, side) call adds, per pixel. Resets the process's peak-RSS mark
    (Linux clear_refs); falls back to a conservative constant where that is unavailable."""
    probe = np.full((1, 3, side, side), 0.5, dtype=np.float32)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return FALLBACK_BYTES_PER_PIXEL
    base = _status_bytes("VmRSS")
    run(probe)
    peak = _status_bytes("VmHWM")
    if base is None or peak is None:
        return FALLBACK_BYTES_PER_PIXEL
    # never below what the input and output tensors alone need (float32, 3 channels, in and out)
    return max(float(peak - base) / (side * side), 24.0)


@dataclass
class MemoryPlan:
    """What the budget decided for one frame size: ``tile`` None means whole frames fit."""

    estimate: int
    budget: int
    tile: int | None

    def describe(self) -> str:
        gb = lambda n: f"{n / 1e9:.1f} GB"
        if self.tile is None:
            return f"whole frames (estimated {gb(self.estimate)} <= budget {gb(self.budget)})"
        estimate, budget = gb(self.estimate), gb(self.budget)
        return f"auto tiles of {self.tile} px (whole frame estimated {estimate} > budget {budget})"


def plan_tiles(
    height: int, width: int, batch: int, bytes_per_pixel: float, budget: int, overlap: int = 64
) -> MemoryPlan:
    """Whole frames if their estimate fits ``budget``, else the largest square tile side that does.

    The frame's own buffers (FRAME_BYTES_PER_PIXEL) come off the budget first; what is left bounds the
    network's activations for one call.
    """
    pixels = height * width * batch
    per_pixel = bytes_per_pixel * ESTIMATE_MARGIN
    estimate = int((per_pixel + FRAME_BYTES_PER_PIXEL) * pixels)
    if estimate <= budget:
        return MemoryPlan(estimate, budget, None)
    left = max(budget - FRAME_BYTES_PER_PIXEL * pixels, 0)
    side = int((left / (per_pixel * batch)) ** 0.5) // 32 * 32
    side = max(side, MIN_TILE, 2 * overlap + 32)
    return MemoryPlan(estimate, budget, min(side, MAX_AUTO_TILE, max(height, width)))
