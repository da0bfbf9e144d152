"""Which onnxruntime build is installed, and the clash that hides the CUDA provider.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` module; with both present, whichever was
installed last wins and the CUDA provider can silently disappear. dehazekit's [cpu] and [gpu] extras each
bring one; this module notices when a machine ended up with more than one and says how to repair it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata

from dehazekit.runtimes.errors import BackendError

# Distributions that all provide the `onnxruntime` module.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-training",
)


def installed_ort_distributions(version_of: Callable[[str], str] = metadata.version) -> list[str]:
    """Names of the installed distributions that provide the onnxruntime module."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            version_of(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def check_single_ort(installed: Iterable[str]) -> None:
    """Raise a BackendError naming the fix when more than one onnxruntime build is installed."""
    installed = list(installed)
    if len(installed) <= 1:
        return
    keep = "onnxruntime-gpu" if "onnxruntime-gpu" in installed else installed[-1]
    extra = {"onnxruntime-gpu": "gpu", "onnxruntime": "cpu"}.get(keep)
    reinstall = f"pip install 'dehazekit[{extra}]'" if extra else f"pip install {keep}"
    raise BackendError.build(
        "more than one onnxruntime build is installed; they overwrite each other's files and the CUDA "
        "provider can vanish",
        got=", ".join(installed),
        expected="exactly one",
        fix=f"pip uninstall -y {' '.join(installed)} && {reinstall}",
    )
