"""fp16 ONNX: dehazekit's converter vs onnxruntime.transformers.float16, node for node, on real photos.

For each model: the fp32 ONNX is converted by both (same fp32 blocklist, fp32 graph I/O); we count the
original nodes whose output precision differs between the two, the nodes each converter adds (Casts),
and the error of each fp16 model against the fp32 ONNX on centre crops of real hazy photos
(scale-normalised, as in the parity reports). Output: benchmarks/results/fp16_converters.json.

    OMP_NUM_THREADS=1 python benchmarks/fp16_converters.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from dehazekit.backbones import create_backbone
from dehazekit.exporters.fp16 import DEFAULT_BLOCKLIST, convert_fp16
from dehazekit.exporters.onnx_export import build_onnx
from dehazekit.exporters.parity_inputs import image_inputs
from dehazekit.models import load_model

SHARED = Path(os.environ.get("DEHAZEKIT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PHOTOS = SHARED / "data" / "real_hazy" / "fattal_bilalora"


def _types(model: onnx.ModelProto, names: set[str]) -> dict[str, list[int]]:
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.output]}
    return {n.name: [types.get(o) for o in n.output] for n in g.node if n.name in names}


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"hazy": x})[0]


def compare(name: str, model: torch.nn.Module, size: int) -> dict:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32, meta = build_onnx(model)
    ours = convert_fp16(fp32)
    theirs = convert_float_to_float16(fp32, keep_io_types=True, op_block_list=sorted(DEFAULT_BLOCKLIST))
    names = {n.name for n in fp32.graph.node}
    a, b = _types(ours, names), _types(theirs, names)
    side = size // meta.pad_multiple * meta.pad_multiple
    crops = image_inputs(PHOTOS, [(side, side)], limit=3)
    errors = {"ours": [], "onnxruntime": []}
    for x in crops.values():
        ref = _run(fp32, x)
        scale = max(1.0, float(np.abs(ref).max()))
        for key, half in (("ours", ours), ("onnxruntime", theirs)):
            errors[key].append(float(np.abs(_run(half, x) - ref).max() / scale))
    return {
        "model": name,
        "nodes": len(names),
        "nodes_with_different_precision": sum(a[n] != b[n] for n in names),
        "nodes_added": {
            "ours": len(ours.graph.node) - len(names),
            "onnxruntime": len(theirs.graph.node) - len(names),
        },
        "max_abs_error_vs_fp32": {k: max(v) for k, v in errors.items()},
        "crops": f"{len(crops)} x {side}x{side} from {PHOTOS.name}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "fp16_converters.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {"default model (gunet-t)": load_model(None)}
    for name in ("dehazeformer-t", "dea", "convir-s", "msbdn"):
        torch.manual_seed(0)
        models[f"{name} (random init)"] = create_backbone(name).eval()
    rows = [compare(name, model, args.size) for name, model in models.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
