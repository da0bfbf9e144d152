"""Fixtures for runtime tests: one tiny exported ONNX model per session, small media per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtimes.onnx_models import export_tiny


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TinyNet, pad_multiple 4, ModelMeta in metadata_props."""
    return export_tiny(tmp_path_factory.mktemp("models") / "tiny.onnx")
