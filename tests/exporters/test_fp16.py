"""Graph-level fp16 conversion: fp32 I/O kept, blocklisted ops stay fp32, Resize scales stay fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dehazekit.exporters.fp16 import DEFAULT_BLOCKLIST, convert_fp16
from dehazekit.runtimes.errors import ExportError


def _graph_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array([-1], np.int64), "axis"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["c"], ["s"], axis=1),
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
        helper.make_node("Mul", ["s", "k"], ["m"]),
        helper.make_node("Resize", ["m", "", "scales"], ["r"], mode="linear"),
        helper.make_node("ReduceMean", ["r", "axis"], ["y"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


def test_conversion_types_and_values():
    model = _graph_model()
    half = convert_fp16(model)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    inits = {i.name: i.data_type for i in half.graph.initializer}
    assert inits["w"] == TensorProto.FLOAT16 and inits["scales"] == TensorProto.FLOAT
    types = {vi.name: vi.type.tensor_type.elem_type for vi in half.graph.value_info}
    nodes = {n.op_type: n for n in half.graph.node}
    assert "Softmax" in DEFAULT_BLOCKLIST and types[nodes["Softmax"].input[0]] == TensorProto.FLOAT
    assert types[nodes["Conv"].output[0]] == TensorProto.FLOAT16
    assert types[nodes["Mul"].output[0]] == TensorProto.FLOAT16
    x = np.random.default_rng(1).random((2, 3, 8, 12), dtype=np.float32)
    ref, got = _run(model, x), _run(half, x)
    assert got.dtype == np.float32 and got.shape == ref.shape == (2, 4, 16, 1)
    assert np.abs(got - ref).max() < 2e-3
    assert np.abs(got - ref).max() > 0, "weights were rounded to fp16: results cannot be bit-identical"


def test_blocklist_is_configurable():
    half = convert_fp16(_graph_model(), blocklist=[])
    types = {vi.name: vi.type.tensor_type.elem_type for vi in half.graph.value_info}
    softmax = next(n for n in half.graph.node if n.op_type == "Softmax")
    assert types[softmax.output[0]] == TensorProto.FLOAT16


def test_control_flow_is_refused():
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    with pytest.raises(ExportError, match="control-flow"):
        convert_fp16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _output_types(model: onnx.ModelProto, names: set[str]) -> dict[str, list[int]]:
    """Element type of every output of the nodes named ``names`` (the original graph's nodes)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.output]}
    return {n.name: [types.get(o) for o in n.output] for n in g.node if n.name in names}


@pytest.mark.parametrize("name", ["tiny-gunet", "tiny-dea", "tiny-dehazeformer", "tiny-msbdn"])
def test_node_for_node_against_onnxruntime_float16(exports, name):
    """Ours and onnxruntime.transformers.float16 (same blocklist) give every node the same precision."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32 = onnx.load(str(exports.onnx(name)))
    names = {n.name for n in fp32.graph.node}
    ours = convert_fp16(fp32)
    theirs = convert_float_to_float16(fp32, keep_io_types=True, op_block_list=sorted(DEFAULT_BLOCKLIST))
    ours_types, theirs_types = _output_types(ours, names), _output_types(theirs, names)
    assert set(ours_types) == set(theirs_types) == names  # no original node lost or renamed
    differ = {n: (ours_types[n], theirs_types[n]) for n in names if ours_types[n] != theirs_types[n]}
    assert not differ, f"{len(differ)} nodes differ, e.g. {list(differ.items())[:3]}"
    floats = sum(TensorProto.FLOAT in t for t in _output_types(fp32, names).values())
    halves = sum(TensorProto.FLOAT16 in t for t in ours_types.values())
    assert halves > floats // 2  # not vacuous: most float nodes run in fp16
    casts = [sum(n.op_type == "Cast" for n in m.graph.node) for m in (ours, theirs)]
    assert casts[0] <= casts[1]  # ours never needs more casts for the same assignment
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    run = {
        m: ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
        for m, p in (("fp32", fp32), ("ours", ours), ("theirs", theirs))
    }
    ref, a, b = (run[k].run(None, {"hazy": x})[0] for k in ("fp32", "ours", "theirs"))
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(a - ref).max() / scale <= np.abs(b - ref).max() / scale * 1.5 + 1e-4
