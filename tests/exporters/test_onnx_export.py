"""Export -> onnxruntime parity for every registered tiny backbone (fp32 and fp16), metadata, stability."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

from dehazekit.backbones import create_backbone, get_spec
from dehazekit.exporters.onnx_export import export_onnx, read_meta
from dehazekit.exporters.trt_lint import lint_onnx
from dehazekit.exporters.verify import default_sizes, realistic_size, verify
from dehazekit.runtimes.errors import ExportError
from dehazekit.runtimes.meta import META_KEY
from tests.exporters.conftest import tiny_backbones

TINY = tiny_backbones()


def test_every_family_has_an_exportable_tiny_config():
    assert len(TINY) >= 5, f"expected tiny configs of most families, got {TINY}"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", TINY)
def test_parity_and_lint(exports, tmp_path, name, precision):
    path = exports.onnx(name, precision)
    spec = get_spec(name)
    sizes = default_sizes(spec.pad_multiple, spec.min_size)
    assert sizes[1][0] != sizes[1][1], "one verification size must be non-square"
    # the realistic-size case once per backbone (fp32); fp16 goes through the same input code
    long_side = 512 if precision == "fp32" else 0
    report = verify(
        exports.model(name), path, sizes=sizes, report_path=tmp_path / "parity.json", long_side=long_side
    )
    assert report.precision == precision
    assert report.passed, [c.failures for c in report.cases]
    saved = json.loads((tmp_path / "parity.json").read_text())
    assert saved["passed"] and len(saved["cases"]) == 2 + bool(long_side) and saved["backbone"] == name
    if long_side:
        assert saved["cases"][-1]["shape"][2:] == list(realistic_size(512, spec.pad_multiple, spec.min_size))
    lint = lint_onnx(path)
    assert lint.ok, lint.errors


def test_graph_contract_and_metadata(exports):
    proto = onnx.load(str(exports.onnx("tiny-gunet")))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("hazy", "clear")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta = read_meta(proto)
    assert (meta.backbone, meta.pad_multiple, meta.precision) == (
        "tiny-gunet",
        get_spec("tiny-gunet").pad_multiple,
        "fp32",
    )
    assert [p.key for p in proto.metadata_props] == [META_KEY]


def test_dynamic_batch(exports):
    spec = get_spec("tiny-dehazeformer")
    model, path = exports.model(spec.name), exports.onnx(spec.name)
    x = torch.rand(3, 3, 32, 40)
    report = verify(model, path, inputs={"batch3": x})
    assert report.passed and report.cases[0].shape == (3, 3, 32, 40)


def test_same_inputs_same_bytes_and_fp16_flag(tmp_path):
    model = create_backbone("tiny-gunet").eval()
    pinned = {"created_at": "2026-01-01T00:00:00+00:00"}
    a = export_onnx(model, tmp_path / "a.onnx", meta_fields=pinned).read_bytes()
    b = export_onnx(model, tmp_path / "b.onnx", meta_fields=pinned).read_bytes()
    assert a == b
    half = export_onnx(model, tmp_path / "h.onnx", fp16=True)
    assert read_meta(half).precision == "fp16" and half.stat().st_size < 0.8 * len(a)
    assert verify(model, half).passed


def test_bad_arguments_are_rejected(tmp_path):
    model = create_backbone("tiny-gunet")
    with pytest.raises(ExportError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", opset=9)
    with pytest.raises(ExportError, match="dynamic axis"):
        export_onnx(model, tmp_path / "x.onnx", dynamic=("time",))
    with pytest.raises(ExportError, match="trace size"):
        export_onnx(model, tmp_path / "x.onnx", trace_size=(30, 30))
    assert not (tmp_path / "x.onnx").exists()


def test_merged_lora_export_matches_unmerged_torch(tmp_path):
    from dehazekit.backbones import candidate_blocks
    from dehazekit.lora import has_lora, inject_lora, lora_parameters

    torch.manual_seed(1)
    model = create_backbone("tiny-gunet").eval()
    base = copy.deepcopy(model)
    inject_lora(model, candidate_blocks(model), rank=2)
    with torch.no_grad():
        for name, param in lora_parameters(model).items():
            if "lora_B" in name:
                param.normal_(0, 0.2)  # random B: the adapter changes the output
    x = torch.rand(1, 3, 48, 64)
    path = export_onnx(model, tmp_path / "adapted.onnx")
    assert has_lora(model), "export must not modify the caller's model"
    report = verify(model, path)  # reference: the unmerged LoRA model
    assert report.passed, [c.failures for c in report.cases]
    with torch.no_grad():
        assert (model(x) - base(x)).abs().max() > 1e-3, "random B must change the output"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gunet-t", "dehazeformer-t", "dea"])
def test_full_size_parity(tmp_path, name):
    model = create_backbone(name).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    spec = get_spec(name)
    report = verify(model, path, sizes=[(256, 256), (256, 256 + 4 * spec.pad_multiple)])
    assert report.passed, [c.failures for c in report.cases]
    assert np.isfinite([c.max_abs for c in report.cases]).all()
