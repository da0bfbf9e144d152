"""`dehazekit.exporters.export` from Python: the parity gate, early validation, outputs, progress."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch import nn

from dehazekit.backbones import create_backbone
from dehazekit.exporters import export
from dehazekit.exporters.onnx_export import read_meta
from dehazekit.runtimes.errors import ConfigError, OutputError, ParityError, UnknownNameError

NO_TRT = importlib.util.find_spec("tensorrt") is None


class _SizeBranch(nn.Module):
    """A size-dependent branch: tracing bakes in the branch of the (small) trace size, so the ONNX is
    wrong at large sizes only -- the class of bug the realistic-size parity case exists for."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y * 0.5 if x.shape[-1] > 256 else y


def _size_branched(name: str = "tiny-gunet") -> nn.Module:
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    parent, attr = next(
        (m, n) for m in model.modules() for n, c in m.named_children() if isinstance(c, nn.Conv2d)
    )
    setattr(parent, attr, _SizeBranch(getattr(parent, attr)))
    return model


def test_wrong_onnx_is_refused_by_the_gate(tmp_path):
    with pytest.raises(ParityError, match="force"):
        export(_size_branched(), "onnx", out=tmp_path)
    assert not (tmp_path / "model.onnx").exists()
    report = json.loads((tmp_path / "model.parity.json").read_text())
    failed = [c["name"] for c in report["cases"] if not c["passed"]]
    assert report["passed"] is False and failed == ["random@384x512"]  # small sizes alone would pass
    kept = export(_size_branched(), "onnx", out=tmp_path, force=True)
    assert kept.onnx.is_file() and not kept.parity.passed


def test_small_sizes_alone_miss_that_bug(tmp_path):
    result = export(_size_branched(), "onnx", out=tmp_path, parity_size=0)
    assert result.parity.passed and max(c.shape[-1] for c in result.parity.cases) <= 256


def test_good_model_passes_with_a_realistic_case(tmp_path):
    torch.manual_seed(0)
    events = []
    result = export(
        create_backbone("tiny-dea").eval(), ["onnx"], out=tmp_path / "d.onnx", progress=events.append
    )
    assert result.parity.passed and result.onnx == tmp_path / "d.onnx" and result.onnx.is_file()
    assert (3, 384, 512) in {c.shape[1:] for c in result.parity.cases}
    assert [e.stage for e in events] == ["load", "onnx", "parity", "parity", "parity", "parity", "write"]
    assert [e.detail for e in events if e.stage == "parity"][1:] == ["case 1/3", "case 2/3", "case 3/3"]
    assert [e.index for e in events] == [1, 2, 3, 3, 3, 3, 4] and all(e.total == 4 for e in events)
    assert read_meta(result.proto) == read_meta(result.onnx) == result.meta


@pytest.mark.parametrize(
    "formats,options,error,needle",
    [
        ("onnx", {"min_shape": "1x3x256x256"}, ConfigError, "engine format only"),
        ("onnx", {"fp61": True}, ConfigError, "did you mean fp16"),
        ("onnx", {"int8": True}, ConfigError, "calibration"),
        ("onnx", {"opset": 9}, ConfigError, "opset"),
        ("engine", {"max_shape": "1x3x256"}, ConfigError, "invalid shape"),
        ("onx", {}, UnknownNameError, "did you mean onnx"),
    ],
)
def test_unsupported_arguments_rejected_before_work(tmp_path, formats, options, error, needle):
    with pytest.raises(error, match=needle):
        export(str(tmp_path / "missing-model"), formats, out=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


def test_outputs_go_beside_the_model_never_over_it(tmp_path):
    from dehazekit.models import save_model

    save_model(create_backbone("tiny-gunet"), tmp_path)
    weights = (tmp_path / "model.safetensors").read_bytes()
    for out in (tmp_path / "model.safetensors", tmp_path / "model.json"):
        with pytest.raises(OutputError, match="overwrite an input"):
            export(tmp_path, "onnx", out=out)
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    result = export(tmp_path / "model.safetensors", "onnx", parity_size=0)
    assert result.onnx == tmp_path / "model.onnx" and result.parity_path == tmp_path / "model.parity.json"


@pytest.mark.skipif(not NO_TRT, reason="tensorrt is installed: the engine is built instead")
def test_engine_without_tensorrt_keeps_the_onnx_and_says_how(tmp_path):
    torch.manual_seed(0)
    result = export(create_backbone("tiny-gunet").eval(), "engine", out=tmp_path, opt_shape="1x3x512x512")
    assert result.onnx.is_file() and result.engine is None and "dehazekit[trt]" in result.skipped["engine"]
    assert result.lint is not None and result.lint.ok
    assert result.trtexec.startswith(f"trtexec --onnx={tmp_path / 'model.onnx'}")
    assert "--optShapes=hazy:1x3x512x512" in result.trtexec


def test_engine_profile_invalid_for_the_backbone_is_refused_before_tracing(tmp_path):
    torch.manual_seed(0)
    events = []
    with pytest.raises(ConfigError, match="multiples of"):
        export(
            create_backbone("tiny-gunet").eval(),
            "engine",
            out=tmp_path,
            min_shape="1x3x33x33",
            progress=events.append,
        )
    assert [e.stage for e in events] == ["load"] and list(tmp_path.iterdir()) == []
