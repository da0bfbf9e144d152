from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtimes.onnx_models import export_tiny


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("sample_models") / "tiny.onnx")
