"""Serving configs: a Triton model repository read back with Triton's own model-config protobuf and run
through onnxruntime with the names/dims it declares; a DeepStream nvinfer config read back as a key file.
Triton server and DeepStream themselves need an NVIDIA GPU and are not run here."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dehazekit.exporters.serving import DEEPSTREAM_CONFIG, write_deepstream, write_triton_repo
from dehazekit.runtimes.errors import ConfigError
from dehazekit.runtimes.meta import ModelMeta
from tests.runtimes.onnx_models import export_tiny

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("serving") / "tiny.onnx")  # pad multiple 4, hazy -> clear


def _parse_triton(path: Path):
    model_config = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config.ModelConfig())  # rejects unknown fields


def test_triton_repository_parses_and_matches_the_model(tiny, tmp_path):
    import onnxruntime as ort

    configs = write_triton_repo(tiny, tmp_path / "repo", max_batch_size=8, instances=2)
    assert configs == [tmp_path / "repo" / "dehazekit" / "config.pbtxt"]
    config = _parse_triton(configs[0])
    assert config.name == "dehazekit" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, config.instance_group[0].KIND_GPU)]
    meta = ModelMeta.from_json(config.parameters["dehazekit_meta"].string_value)
    assert meta.pad_multiple == 4
    model = tmp_path / "repo" / "dehazekit" / "1" / "model.onnx"
    assert model.read_bytes() == tiny.read_bytes()
    # what Triton would do: a batch of max_batch_size with -1 dims filled, fed by the declared names/types
    (inp,), (out,) = config.input, config.output
    assert list(inp.dims) == [3, -1, -1] == list(out.dims)
    types = pytest.importorskip("tritonclient.grpc.model_config_pb2").DataType
    assert types.Name(inp.data_type) == types.Name(out.data_type) == "TYPE_FP32"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).random((config.max_batch_size, 3, 32, 48), dtype=np.float32)
    (result,) = session.run([out.name], {inp.name: batch})
    assert result.shape == batch.shape


def test_triton_tensorrt_plan_takes_the_engine_profile_batch(tiny, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine bytes")  # TensorRT cannot build here; the copy is what is tested
    sidecar = ModelMeta(
        backbone="tiny-test", pad_multiple=4, extra={"tensorrt": {"max_shape": [4, 3, 1080, 1920]}}
    )
    sidecar.save(tmp_path / "model.engine.json")
    configs = write_triton_repo(tiny, tmp_path / "repo", engine=engine, max_batch_size=8)
    plan = _parse_triton(configs[1])
    assert plan.name == "dehazekit_trt" and plan.platform == "tensorrt_plan" and plan.max_batch_size == 4
    assert (tmp_path / "repo" / "dehazekit_trt" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    onnx_config = _parse_triton(configs[0])  # the ONNX model runs through ORT's TensorRT provider
    (accelerator,) = onnx_config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"


def test_deepstream_config_reads_back_as_nvinfer_expects(tiny, tmp_path):
    path = write_deepstream(tiny, tmp_path / "ds", size=(720, 1280))
    parser = configparser.ConfigParser(comment_prefixes=("#",), inline_comment_prefixes=None)
    parser.read(path)
    prop = parser["property"]
    assert prop["network-type"] == "100" and prop["output-tensor-meta"] == "1"
    assert float(prop["net-scale-factor"]) * 255 == pytest.approx(1.0) and prop["offsets"] == "0;0;0"
    assert prop["model-color-format"] == "0" and prop["network-input-order"] == "0"
    assert prop["output-blob-names"] == "clear" and prop["infer-dims"] == "3;720;1280"
    assert (path.parent / prop["onnx-file"]).read_bytes() == tiny.read_bytes()
    assert prop["model-engine-file"] == "model.onnx_b1_gpu0_fp32.engine"  # nvinfer's own cache name
    with pytest.raises(ConfigError, match="multiple of 4"):
        write_deepstream(tiny, tmp_path / "bad", size=(721, 1280))


def test_sample_pipeline_uses_the_written_config():
    text = (REPO / "samples" / "deepstream" / "pipeline.txt").read_text()
    assert f"config-file-path={DEEPSTREAM_CONFIG}" in text and "nvinfer" in text


def test_export_cli_writes_triton_and_deepstream(tmp_path):
    from dehazekit.cli.main import app

    result = CliRunner().invoke(
        app,
        [
            "export",
            "--backbone",
            "tiny-gunet",
            "--onnx",
            str(tmp_path / "g.onnx"),
            "--triton",
            str(tmp_path / "repo"),
            "--deepstream",
            str(tmp_path / "ds"),
            "--deepstream-size",
            "256x256",
        ],
    )
    assert result.exit_code == 0, result.output
    config = _parse_triton(tmp_path / "repo" / "dehazekit" / "config.pbtxt")
    assert json.loads(config.parameters["dehazekit_meta"].string_value)["backbone"] == "tiny-gunet"
    assert (tmp_path / "ds" / DEEPSTREAM_CONFIG).is_file() and (tmp_path / "ds" / "model.onnx").is_file()
