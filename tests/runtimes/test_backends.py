"""Backends: opening by suffix, real onnxruntime inference, input validation, bad model files."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from dehazekit.runtimes.backends import BaseBackend, open_backend, register_backend, registered_suffixes
from dehazekit.runtimes.backends.onnx_backend import choose_providers
from dehazekit.runtimes.errors import (
    BackendError,
    ConfigError,
    InputError,
    MissingDependencyError,
    ModelFileError,
    UnknownNameError,
)
from dehazekit.runtimes.meta import ModelMeta
from tests.runtimes.onnx_models import export_tiny


def test_onnx_backend_matches_a_plain_session(tiny_onnx):
    x = np.random.default_rng(0).random((2, 3, 24, 36), dtype=np.float32)
    expected = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(
        None, {"hazy": x}
    )[0]
    with open_backend(tiny_onnx, device="cpu") as backend:
        out = backend.infer(x)
        assert backend.meta.pad_multiple == 4 and backend.meta.backbone == "tiny-test"
        assert backend.describe()["providers"] == ["CPUExecutionProvider"]
    np.testing.assert_array_equal(out, expected)
    assert out.shape == x.shape and out.dtype == np.float32


@pytest.mark.parametrize(
    "batch,match",
    [
        (np.zeros((1, 3, 8, 8), np.float64), "dtype"),
        (np.zeros((3, 8, 8), np.float32), "rank"),
        (np.zeros((1, 4, 8, 8), np.float32), "channels"),
        (np.full((1, 3, 8, 8), 255.0, np.float32), "value range"),
        (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN"),
        ([[1.0]], "numpy array"),
    ],
)
def test_invalid_batches_are_rejected_before_inference(tiny_onnx, batch, match):
    with open_backend(tiny_onnx, device="cpu") as backend, pytest.raises(InputError, match=match):
        backend.infer(batch)


def test_closed_backend_refuses_work(tiny_onnx):
    backend = open_backend(tiny_onnx, device="cpu")
    backend.close()
    with pytest.raises(InputError, match="closed"):
        backend.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_missing_and_wrong_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        open_backend(tmp_path / "nope.onnx")
    fake = tmp_path / "fake.onnx"
    fake.write_text("this is not a protobuf")
    with pytest.raises(ModelFileError, match="cannot load fake.onnx"):
        open_backend(fake)
    odd = tmp_path / "model.xyz"
    odd.write_text("?")
    with pytest.raises(UnknownNameError, match="no runtime backend for '.xyz'"):
        open_backend(odd)
    typo = tmp_path / "model.onx"
    typo.write_text("?")
    with pytest.raises(UnknownNameError, match="did you mean .onnx"):
        open_backend(typo)


def test_onnx_without_meta_needs_a_sidecar(tmp_path):
    bare = export_tiny(tmp_path / "bare.onnx", meta=False)
    with pytest.raises(ModelFileError, match="carries no dehazekit ModelMeta"):
        open_backend(bare)
    ModelMeta(backbone="from-sidecar", pad_multiple=8).save(tmp_path / "bare.json")
    with open_backend(bare, device="cpu") as backend:
        assert backend.meta.backbone == "from-sidecar" and backend.meta.pad_multiple == 8


def test_model_with_other_channel_count_rejects_rgb(tmp_path):
    model = export_tiny(tmp_path / "four.onnx", channels=4)
    with open_backend(model, device="cpu") as backend, pytest.raises(InputError, match="channels"):
        backend.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_provider_choice_follows_preference_and_availability():
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", None, cpu_only) == ["CPUExecutionProvider"]
    full = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert choose_providers("auto", None, full) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cuda", None, full) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendError, match="no GPU provider"):
        choose_providers("cuda", None, cpu_only)
    with pytest.raises(BackendError, match="not available"):
        choose_providers("auto", ["CUDAExecutionProvider"], cpu_only)
    with pytest.raises(ConfigError, match="unknown device"):
        choose_providers("tpu", None, cpu_only)


def test_registry_is_overridable(tmp_path, tiny_onnx):
    class Identity(BaseBackend):
        name = "identity"

        def __init__(self, path, device="auto", providers=None):
            super().__init__(ModelMeta(backbone="identity"))

        def _infer(self, batch):
            return batch

    target = tmp_path / "m.ident"
    target.write_text("x")
    register_backend(".ident", Identity)
    assert ".ident" in registered_suffixes()
    with pytest.raises(ModelFileError, match="already registered"):
        register_backend(".ident", Identity)
    x = np.random.default_rng(1).random((1, 3, 4, 4), dtype=np.float32)
    np.testing.assert_array_equal(open_backend(target).infer(x), x)


def test_engine_without_tensorrt_names_the_extra(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here; the missing-dependency message cannot be shown")
    except ImportError:
        pass
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(ModelFileError, match="sidecar"):
        open_backend(engine)
    (tmp_path / "model.engine.json").write_text(json.dumps(ModelMeta(backbone="x").to_dict()))
    with pytest.raises(MissingDependencyError, match=r"dehazekit\[trt\]"):
        open_backend(engine)


def test_torch_backend_and_onnx_export_of_one_registered_model_agree(tmp_path):
    """Model folder (torch backend, lazy torch) vs its dehazekit.exporters.export_onnx file (onnxruntime)."""
    pytest.importorskip(
        "dehazekit.exporters.onnx_export", reason="dehazekit.exporters.export_onnx not available"
    )
    from dehazekit.runtimes import Dehazer
    from tests.runtimes.media import moving_frames
    from tests.runtimes.onnx_models import export_registered

    folder, onnx_path = export_registered(tmp_path, "tiny-gunet")
    x = np.random.default_rng(0).random((2, 3, 16, 24), dtype=np.float32)
    with (
        open_backend(folder, device="cpu") as torch_backend,
        open_backend(onnx_path, device="cpu") as onnx_backend,
    ):
        assert torch_backend.name == "torch" and torch_backend.meta.backbone == onnx_backend.meta.backbone
        np.testing.assert_allclose(torch_backend.infer(x), onnx_backend.infer(x), atol=1e-5)
        frame = moving_frames(1, 13, 11)[0]  # below min_size 16 and off the pad multiple: padded both ways
        a, b = Dehazer(torch_backend)(frame), Dehazer(onnx_backend)(frame)
        assert a.shape == frame.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding only
