"""TensorRT backend against onnxruntime on the same tiny model (needs tensorrt + an NVIDIA GPU)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from dehazekit.runtimes.backends import open_backend
from dehazekit.runtimes.meta import ModelMeta

pytestmark = pytest.mark.trt


def build_engine(onnx_path, engine_path):
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("hazy", (1, 3, 16, 16), (2, 3, 32, 48), (4, 3, 64, 64))
    config.add_optimization_profile(profile)
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))
    ModelMeta(backbone="tiny-test", pad_multiple=4).save(engine_path.with_name(engine_path.name + ".json"))
    return engine_path


def test_engine_matches_onnxruntime_and_reuses_buffers(tmp_path, tiny_onnx):
    engine = build_engine(tiny_onnx, tmp_path / "tiny.engine")
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with open_backend(engine) as backend:
        assert backend.name == "tensorrt" and backend.meta.pad_multiple == 4
        for shape in [(2, 3, 32, 48), (1, 3, 16, 16), (4, 3, 64, 64)]:  # grow, shrink, grow the buffers
            x = rng.random(shape, dtype=np.float32)
            np.testing.assert_allclose(backend.infer(x), session.run(None, {"hazy": x})[0], atol=1e-3)
        from dehazekit.runtimes.errors import BackendError

        with pytest.raises(BackendError, match="optimisation profile"):
            backend.infer(rng.random((1, 3, 128, 128), dtype=np.float32))
