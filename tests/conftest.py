"""Shared test fixtures and marker gating.

Markers (declared in pyproject with --strict-markers): slow, gpu, trt, clip_weights. Tests whose
machine lacks what a marker needs are skipped with the reason; ``slow`` runs only with -m slow.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEHAZEKIT_SHARED", REPO.parent / "shared"))

# Test tensors are tiny (16-64 px): a second intra-op thread buys nothing, and on a loaded 2-core
# runner every parallel region waits for a descheduled OpenMP thread (measured: tests/dehazekit/adapt
# 52-244 s with 2 threads vs 10 s with 1). Pin one thread unless the caller chose a count; the
# environment variable also reaches subprocesses started by the tests.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The suite never writes into the user's real cache (the default model's ONNX, built by `run`/`export`); one
# throw-away cache for the session, inherited by the CLI subprocesses the tests start.
os.environ["DEHAZEKIT_CACHE"] = tempfile.mkdtemp(prefix="dehazekit-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    try:  # a runtimes-only install has no torch
        import torch
    except ImportError:
        return
    threads = os.environ["OMP_NUM_THREADS"]
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = "slow" in (config.getoption("-m") or "")
    has_trt = importlib.util.find_spec("tensorrt") is not None
    has_cuda = _has_cuda()
    clip_weights = os.environ.get("DEHAZEKIT_CLIP_WEIGHTS")
    reasons = {
        "slow": None if run_slow else "slow test: run with `pytest -m slow`",
        "gpu": None if has_cuda else "needs a CUDA GPU (none on this machine)",
        "trt": None
        if (has_trt and has_cuda)
        else "needs the tensorrt package and an NVIDIA GPU (pip install 'dehazekit[trt]')",
        "clip_weights": None
        if clip_weights and Path(clip_weights).is_file()
        else "needs pretrained CLIP weights: set DEHAZEKIT_CLIP_WEIGHTS to a local open_clip checkpoint",
    }
    for item in items:
        for marker, reason in reasons.items():
            # markers only: item.keywords also holds folder names, so a checkout in a folder named 'gpu'
            # or 'slow' would skip the whole suite
            if reason and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (CI has it); tests needing it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set DEHAZEKIT_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def compat_dir(shared_dir: Path) -> Path:
    path = shared_dir / "compat"
    if not path.is_dir():
        pytest.skip(f"compat fixtures not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data(shared_dir: Path) -> Path:
    path = shared_dir / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    import torch

    torch.manual_seed(0)
