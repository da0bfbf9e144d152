"""FP16 conversion written on the ONNX graph (onnxconverter-common is not a dependency).

The converted model keeps float32 inputs/outputs, so callers and the parity check are unchanged.
Every float tensor gets a "native" precision (where it is produced) and every consumer slot a
"wanted" one; a Cast is inserted wherever they differ, once per (tensor, precision). Ops that
overflow or lose too much in half precision (normalisation, reductions, pow/exp/log/softmax, ...)
stay in float32 via the blocklist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dehazekit.runtimes.errors import ExportError

log = logging.getLogger(__name__)

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)

NORMALISATION = frozenset(
    {
        "BatchNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "LpNormalization",
        "MeanVarianceNormalization",
        "RMSNormalization",
        "LRN",
    }
)
REDUCTIONS = frozenset(
    {
        "ReduceMean",
        "ReduceSum",
        "ReduceSumSquare",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceProd",
        "GlobalAveragePool",
        "GlobalLpPool",
        "CumSum",
    }
)
EXPONENTIAL = frozenset({"Pow", "Exp", "Log", "Softmax", "LogSoftmax", "Softplus", "Sqrt", "Reciprocal"})
# Ops whose output dtype comes from an attribute: keeping them fp32 avoids rewriting that attribute.
DTYPE_ATTR_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "EyeLike",
        "Multinomial",
        "Bernoulli",
    }
)
DEFAULT_BLOCKLIST = NORMALISATION | REDUCTIONS | EXPONENTIAL | DTYPE_ATTR_OPS

# Input slots the ONNX spec types as float32 regardless of the data type (Resize roi/scales).
FP32_SLOTS = {"Resize": (1, 2), "Upsample": (1,)}
# Ops that accept any input type: their inputs are never cast.
ANY_INPUT_OPS = frozenset({"Shape", "Size", "Cast"})


def _move_constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Constant nodes become initializers so they are stored in the precision their consumers want."""
    keep = []
    for node in graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and set(attr) == {"value"}:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr["value"].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.input, *g.output, *g.value_info]}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


class _Converter:
    def __init__(self, model: onnx.ModelProto, blocklist: frozenset[str]) -> None:
        self.model, self.graph, self.blocklist = model, model.graph, blocklist
        self.types = _elem_types(model)
        self.keep_fp32: set[str] = set()  # names of nodes this converter adds that must stay fp32
        self.native: dict[str, int] = {}
        self.cast_cache: dict[tuple[str, int], str] = {}
        self.casts_added = 0

    def is_float(self, name: str) -> bool:
        return self.types.get(name) == FLOAT

    def low(self, node: onnx.NodeProto) -> bool:
        return (
            node.domain in ("", "ai.onnx")
            and node.op_type not in self.blocklist
            and node.name not in self.keep_fp32
        )

    def wanted(self, node: onnx.NodeProto, slot: int, name: str) -> int | None:
        if not name or not self.is_float(name) or node.op_type in ANY_INPUT_OPS:
            return None
        if slot in FP32_SLOTS.get(node.op_type, ()):
            return FLOAT
        return HALF if self.low(node) else FLOAT

    def cast_outputs_to_fp32(self) -> None:
        """Graph outputs produced in fp16 get a final Cast so the model's outputs stay float32."""
        producers = {out: node for node in self.graph.node for out in node.output}
        for out in self.graph.output:
            node = producers.get(out.name)
            if node is None or not self.is_float(out.name) or not self.low(node):
                continue
            inner = f"{out.name}__fp16"
            for other in self.graph.node:
                for i, name in enumerate(other.input):
                    if name == out.name:
                        other.input[i] = inner
            node.output[list(node.output).index(out.name)] = inner
            cast = helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"{out.name}__to_fp32")
            self.keep_fp32.add(cast.name)
            self.graph.node.append(cast)
            self.types[inner] = FLOAT

    def decide_initializers(self) -> None:
        wants: dict[str, set[int]] = {}
        for node in self.graph.node:
            for slot, name in enumerate(node.input):
                w = self.wanted(node, slot, name)
                if w is not None:
                    wants.setdefault(name, set()).add(w)
        graph_outputs = {o.name for o in self.graph.output}
        for init in self.graph.initializer:
            if init.data_type != FLOAT or init.name in graph_outputs:
                continue
            if wants.get(init.name) == {HALF}:
                array = numpy_helper.to_array(init)
                if np.abs(array).max(initial=0.0) > FP16_MAX:
                    log.warning("fp16: initializer %s exceeds the fp16 range; clipped", init.name)
                init.CopyFrom(
                    numpy_helper.from_array(np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16), init.name)
                )
                self.native[init.name] = HALF
            else:
                self.native[init.name] = FLOAT
        for inp in self.graph.input:
            self.native.setdefault(inp.name, FLOAT)

    def _cast(self, name: str, to: int, out_nodes: list[onnx.NodeProto]) -> str:
        key = (name, to)
        if key not in self.cast_cache:
            suffix = "fp16" if to == HALF else "fp32"
            cast_name = f"{name}__{suffix}"
            cast = helper.make_node("Cast", [name], [cast_name], to=to, name=f"{name}__cast_{suffix}")
            out_nodes.append(cast)
            self.cast_cache[key] = cast_name
            self.casts_added += 1
        return self.cast_cache[key]

    def rewrite_nodes(self) -> None:
        new_nodes: list[onnx.NodeProto] = []
        for node in list(self.graph.node):
            for slot, name in enumerate(node.input):
                w = self.wanted(node, slot, name)
                if w is not None and self.native.get(name, FLOAT) != w:
                    node.input[slot] = self._cast(name, w, new_nodes)
            self._retarget_attributes(node)
            for out in node.output:
                if self.is_float(out):
                    self.native[out] = self._output_precision(node)
            new_nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(new_nodes)

    def _output_precision(self, node: onnx.NodeProto) -> int:
        return HALF if self.low(node) else FLOAT

    def _retarget_attributes(self, node: onnx.NodeProto) -> None:
        if not self.low(node):
            return
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = HALF
            elif node.op_type == "ConstantOfShape" and attr.name == "value" and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name)
                )


def _has_subgraphs(graph: onnx.GraphProto) -> list[str]:
    kinds = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    return [f"{n.op_type}:{n.name}" for n in graph.node if any(a.type in kinds for a in n.attribute)]


def convert_fp16(model: onnx.ModelProto, *, blocklist: Iterable[str] = DEFAULT_BLOCKLIST) -> onnx.ModelProto:
    """Return an fp16 copy of ``model``: weights and non-blocked ops in fp16, float32 graph I/O.

    The ModelMeta in metadata_props is updated to precision "fp16" (dtype of the I/O stays float32).
    """
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    control_flow = _has_subgraphs(converted.graph)
    if control_flow:
        raise ExportError.build(
            "fp16 conversion does not handle control-flow subgraphs",
            got=control_flow[:3],
            fix="export in fp32, or simplify the model so If/Loop fold away",
        )
    _move_constants_to_initializers(converted.graph)
    conv = _Converter(converted, frozenset(blocklist))
    conv.cast_outputs_to_fp32()
    conv.decide_initializers()
    conv.rewrite_nodes()
    del converted.graph.value_info[:]
    converted = onnx.shape_inference.infer_shapes(converted)
    onnx.checker.check_model(converted)
    _mark_fp16(converted)
    log.debug("fp16: %d casts inserted", conv.casts_added)
    return converted


def _mark_fp16(model: onnx.ModelProto) -> None:
    from dehazekit.runtimes.meta import META_KEY, ModelMeta

    for entry in model.metadata_props:
        if entry.key == META_KEY:
            entry.value = ModelMeta.from_json(entry.value).replace(precision="fp16").to_json()
