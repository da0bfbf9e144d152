"""Static check that an exported ONNX graph parses with the TensorRT ONNX parser (TRT 10.x / 11.x).

The table is written from onnx-tensorrt's "Supported ONNX Operators" matrix (docs/operators.md, TensorRT
10.15 release: opset 9..24; TensorRT 10.0 documents opset 9..20). TensorRT 11 keeps that operator set;
its difference that matters here is typing (strongly typed only), which tensorrt_build handles.
Attribute restrictions (Resize modes, pooling dilations, ...) come from the same matrix's notes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

from dehazekit.runtimes.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

SUPPORTED_OPS = frozenset(
    """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax
Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish
Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan
Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose
Trilu Unsqueeze Upsample Where Xor
""".split()
)

# Listed as "N" in the matrix: named so the lint can say "unsupported" rather than "unknown".
UNSUPPORTED_OPS = frozenset(
    """
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool
MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement
OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty
SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence
StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split()
)

RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
RESIZE_NEAREST = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
PAD_MODES = frozenset({"constant", "reflect", "edge"})  # "wrap" is not listed in the matrix notes: flagged
OPSET_RANGE = {10: (9, 20), 11: (9, 24)}
CONSTANT_INPUTS = {  # (op, input index) that the parser needs at build time
    **{
        (op, 1): "axes"
        for op in (
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
            "Squeeze",
            "Unsqueeze",
        )
    },
    ("CumSum", 1): "axis",
    ("OneHot", 1): "depth",
}
BAD_DTYPES = {
    TensorProto.STRING: "error",
    TensorProto.COMPLEX64: "error",
    TensorProto.COMPLEX128: "error",
    TensorProto.DOUBLE: "warning",
    TensorProto.UINT16: "error",
    TensorProto.UINT32: "error",
    TensorProto.UINT64: "error",
}


@dataclass(frozen=True)
class LintIssue:
    severity: str  # "error" (the parser rejects it) or "warning" (parses with a caveat)
    node: str
    op: str
    message: str


@dataclass
class LintReport:
    path: str
    trt_majors: tuple[int, ...]
    ops: dict[str, int] = field(default_factory=dict)
    issues: list[LintIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[LintIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_failed(self) -> None:
        if self.errors:
            lines = [f"{i.op} ({i.node}): {i.message}" for i in self.errors[:5]]
            raise ExportError.build(
                f"{self.path} uses ONNX features the TensorRT parser rejects",
                got=lines,
                expected=f"TensorRT {'/'.join(map(str, self.trt_majors))}.x support",
                fix="change the layer in the backbone or choose another backbone",
            )


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_resize(node: onnx.NodeProto, attrs: dict[str, object]) -> Iterable[tuple[str, str]]:
    mode = _text(attrs.get("mode", "nearest"))
    coords = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    if mode == "cubic":
        # The matrix documents nearest/linear only, but TensorRT's IResizeLayer has a cubic mode:
        # not provably rejected, so a warning that asks for a real build (trt-marked test).
        yield "warning", "Resize mode 'cubic' is not in the documented matrix: confirm with a TensorRT build"
    elif mode not in RESIZE_MODES:
        yield "error", f"Resize mode {mode!r} unsupported (TensorRT: {sorted(RESIZE_MODES)})"
    if coords not in RESIZE_COORDINATES:
        yield "error", f"Resize coordinate_transformation_mode {coords!r} unsupported"
    if mode == "nearest" and _text(attrs.get("nearest_mode", "round_prefer_floor")) not in RESIZE_NEAREST:
        yield "error", f"Resize nearest_mode {_text(attrs.get('nearest_mode'))!r} unsupported"
    if int(attrs.get("antialias", 0)):
        yield "error", "Resize antialias unsupported"
    if _text(attrs.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
        yield "error", "Resize keep_aspect_ratio_policy must be 'stretch'"


def _check_node(node: onnx.NodeProto, constants: set[str]) -> Iterable[tuple[str, str]]:
    attrs = _attrs(node)
    op = node.op_type
    if op == "Resize":
        yield from _check_resize(node, attrs)
    elif op == "Pad":
        mode = _text(attrs.get("mode", "constant"))
        if mode not in PAD_MODES:
            yield (
                ("warning" if mode == "wrap" else "error"),
                f"Pad mode {mode!r} not in the documented {sorted(PAD_MODES)}",
            )
    elif op in ("AveragePool", "MaxPool", "LpPool"):
        if any(int(d) != 1 for d in attrs.get("dilations", [])):
            yield "error", f"{op} dilations must be all ones"
        if len(attrs.get("kernel_shape", [0, 0])) not in (2, 3):
            yield "error", f"{op}: only 2D or 3D pooling"
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            yield "error", "MaxPool Indices output unsupported"
    elif op == "LayerNormalization" and len([o for o in node.output if o]) > 1:
        yield "error", "LayerNormalization: only the first output is supported"
    elif op == "TopK" and int(attrs.get("sorted", 1)) != 1:
        yield "error", "TopK sorted must be 1"
    elif op == "ScatterND" and _text(attrs.get("reduction", "none")) != "none":
        yield "error", "ScatterND reduction must be 'none'"
    for (cop, index), what in CONSTANT_INPUTS.items():
        if op == cop and len(node.input) > index and node.input[index] and node.input[index] not in constants:
            yield "error", f"{op} input {what!r} must be a build-time constant (initializer)"


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    return names


def _value_types(graph: onnx.GraphProto) -> dict[str, int]:
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in [*graph.input, *graph.output, *graph.value_info]
    }
    types.update({i.name: i.data_type for i in graph.initializer})
    return types


def lint_onnx(model: str | Path | onnx.ModelProto, trt_majors: Iterable[int] = (10, 11)) -> LintReport:
    """Check ops, attributes, opset and dtypes of ``model`` against the TensorRT ONNX parser matrix."""
    majors = tuple(sorted(set(trt_majors)))
    unknown = [m for m in majors if m not in OPSET_RANGE]
    if unknown:
        raise ConfigError.build(
            "no TensorRT operator table for that major version", got=unknown, expected=sorted(OPSET_RANGE)
        )
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    try:
        proto = onnx.shape_inference.infer_shapes(proto)  # value types for the dtype check
    except Exception as exc:  # e.g. custom-domain ops: lint what is declared rather than fail
        log.debug("lint without inferred types: %s", exc)
    report = LintReport(
        path=str(model) if not isinstance(model, onnx.ModelProto) else proto.graph.name, trt_majors=majors
    )
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    for major in majors:
        low, high = OPSET_RANGE[major]
        if not low <= opset <= high:
            report.issues.append(
                LintIssue(
                    "error", "<model>", "opset", f"opset {opset} outside {low}..{high} for TRT {major}.x"
                )
            )
    constants = _constant_names(graph)
    for node in graph.node:
        report.ops[node.op_type] = report.ops.get(node.op_type, 0) + 1
        name = node.name or node.output[0]
        if node.domain not in ("", "ai.onnx"):
            report.issues.append(
                LintIssue(
                    "error", name, node.op_type, f"custom domain {node.domain!r} needs a TensorRT plugin"
                )
            )
        elif node.op_type in UNSUPPORTED_OPS:
            report.issues.append(
                LintIssue("error", name, node.op_type, "operator not supported by the TensorRT ONNX parser")
            )
        elif node.op_type not in SUPPORTED_OPS:
            report.issues.append(
                LintIssue("error", name, node.op_type, "operator not in the TensorRT support matrix")
            )
        else:
            report.issues += [
                LintIssue(sev, name, node.op_type, msg) for sev, msg in _check_node(node, constants)
            ]
    for tensor, dtype in _value_types(graph).items():
        if dtype in BAD_DTYPES:
            label = TensorProto.DataType.Name(dtype)
            report.issues.append(LintIssue(BAD_DTYPES[dtype], tensor, "dtype", f"tensor of type {label}"))
    return report
