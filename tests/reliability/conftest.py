"""Fixtures for the reliability suite: an identity ONNX model (outputs equal inputs, so pixel checks are
exact), a tiny real network, and the helpers every case uses to check exit code, message and files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from dehazekit.runtimes.meta import META_KEY, ModelMeta
from tests.runtimes.onnx_models import export_tiny


def export_identity(path: Path) -> Path:
    """(B, 3, H, W) -> the same tensor: a model whose output is exactly what the reader produced."""
    dims = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["hazy"], ["clear"])],
        "identity",
        [helper.make_tensor_value_info("hazy", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("clear", TensorProto.FLOAT, dims)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, ModelMeta(backbone="identity-test").to_json()
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="session")
def identity_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_identity(tmp_path_factory.mktemp("models") / "identity.onnx")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("models") / "tiny.onnx")


def invoke(*args: object):
    """`dehazekit ARGS` in process; returns typer's Result (exit_code, output)."""
    from dehazekit.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def digest_tree(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (inputs must be byte-identical after every case)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def files_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` as sorted relative paths (hidden ones included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_user_error(result, code: int, *phrases: str) -> None:
    """Exit ``code``, every phrase in the output, one error line, never a traceback."""
    assert result.exit_code == code, result.output
    for phrase in phrases:
        assert phrase in result.output, (phrase, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
