"""The TensorRT operator lint flags what the parser rejects, on small hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from dehazekit.exporters.trt_lint import lint_onnx
from dehazekit.runtimes.errors import ConfigError, ExportError


def _model(nodes, inits=(), opset=17, out_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape) if out_shape else None)],
        initializer=list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _scales(values=(1.0, 1.0, 2.0, 2.0)):
    return numpy_helper.from_array(np.array(values, np.float32), "scales")


def test_clean_graph_passes():
    report = lint_onnx(_model([helper.make_node("Relu", ["x"], ["y"])]))
    assert report.ok and not report.issues and report.ops == {"Relu": 1}


@pytest.mark.parametrize(
    "attrs,severity",
    [
        ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, None),
        ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "error"),
        ({"mode": "nearest", "nearest_mode": "floor"}, None),
        ({"mode": "cubic"}, "warning"),
        ({"mode": "linear", "antialias": 1}, "error"),
    ],
)
def test_resize_attributes(attrs, severity):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    report = lint_onnx(_model([node], [_scales()], opset=19, out_shape=(1, 3, 16, 16)))
    got = {i.severity for i in report.issues}
    assert got == ({severity} if severity else set())


@pytest.mark.parametrize(
    "mode,severity", [("reflect", None), ("edge", None), ("constant", None), ("wrap", "warning")]
)
def test_pad_modes(mode, severity):
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    report = lint_onnx(_model([node], [pads], out_shape=(1, 3, 10, 10)))
    assert {i.severity for i in report.issues} == ({severity} if severity else set())


def test_unsupported_and_custom_ops_are_errors():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Unique", ["a"], ["b"]),
        helper.make_node("Frobnicate", ["b"], ["y"], domain="com.example"),
    ]
    report = lint_onnx(_model(nodes))
    assert not report.ok
    messages = " ".join(i.message for i in report.errors)
    assert "not supported" in messages and "plugin" in messages
    with pytest.raises(ExportError, match="TensorRT parser rejects"):
        report.raise_if_failed()


def test_reduce_axes_must_be_constant_and_opset_range():
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"])
    model = _model([node], opset=18, out_shape=None)
    model.graph.input.append(axes)
    assert any("build-time constant" in i.message for i in lint_onnx(model).errors)
    relu = _model([helper.make_node("Relu", ["x"], ["y"])], opset=21)
    assert lint_onnx(relu, trt_majors=[11]).ok
    assert not lint_onnx(relu, trt_majors=[10]).ok
    with pytest.raises(ConfigError):
        lint_onnx(relu, trt_majors=[8])


def test_double_tensors_are_flagged():
    nodes = [
        helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT),
    ]
    report = lint_onnx(_model(nodes))
    assert report.ok and any(i.op == "dtype" and i.severity == "warning" for i in report.issues)
