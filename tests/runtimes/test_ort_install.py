"""The onnxruntime/onnxruntime-gpu clash is detected with the fix, and a single build passes."""

from importlib import metadata

import pytest

from dehazekit.runtimes.backends.ort_install import check_single_ort, installed_ort_distributions
from dehazekit.runtimes.errors import BackendError


def fake_versions(*installed: str):
    def version_of(name: str) -> str:
        if name in installed:
            return "1.20.0"
        raise metadata.PackageNotFoundError(name)

    return version_of


def test_cpu_and_gpu_builds_together_are_refused_with_the_repair_command():
    installed = installed_ort_distributions(fake_versions("onnxruntime", "onnxruntime-gpu"))
    assert installed == ["onnxruntime", "onnxruntime-gpu"]
    with pytest.raises(BackendError) as err:
        check_single_ort(installed)
    message = str(err.value)
    assert "onnxruntime, onnxruntime-gpu" in message
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'dehazekit[gpu]'" in message


@pytest.mark.parametrize("installed", [(), ("onnxruntime",), ("onnxruntime-gpu",)])
def test_one_build_or_none_passes(installed):
    check_single_ort(installed_ort_distributions(fake_versions(*installed)))


def test_this_environment_has_exactly_one_build():
    assert len(installed_ort_distributions()) == 1
