"""Tiny ONNX models for runtime tests, exported here so tests need no other helper's exporter.

``TinyNet`` halves and doubles resolution inside, so its input sides must be even: with
``pad_multiple=4`` in its ModelMeta the runtime's padding path is exercised on odd-sized frames.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.runtimes.meta import META_KEY, ModelMeta


class TinyNet(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]; H, W even. ``depth`` extra 3x3 convs widen
    the receptive field (the tiling seam test wants one larger than a pixel or two)."""

    def __init__(self, width: int = 4, depth: int = 0) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(
            *[nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in range(depth)]
        )
        self.low = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(torch.relu(self.head(x)))
        z = F.interpolate(torch.relu(self.low(F.avg_pool2d(y, 2))), scale_factor=2.0, mode="nearest")
        return torch.clamp(x + 0.25 * torch.tanh(self.tail(y + z)), 0.0, 1.0)


def export_tiny(
    path: Path,
    *,
    width: int = 4,
    depth: int = 0,
    seed: int = 0,
    pad_multiple: int = 4,
    meta: bool = True,
    channels: int = 3,
) -> Path:
    """Export a TinyNet with dynamic batch/height/width, input "hazy", output "clear", ModelMeta inside."""
    torch.manual_seed(seed)
    model = TinyNet(width, depth).eval()
    if channels != 3:  # a deliberately mismatched model for the bad-input tests
        model.head = nn.Conv2d(channels, width, 3, padding=1)
        model.forward = lambda x: torch.relu(model.tail(torch.relu(model.head(x))))  # type: ignore[method-assign]
    dynamic = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        model,
        (torch.rand(1, channels, 32, 32),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["hazy"],
        output_names=["clear"],
        dynamic_axes={"hazy": dynamic, "clear": dynamic},
    )
    if meta:
        proto = onnx.load(str(path))
        info = ModelMeta(
            backbone="tiny-test", config={"width": width, "depth": depth}, pad_multiple=pad_multiple
        )
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, info.to_json()
        onnx.save(proto, str(path))
    return path


def export_registered(out_dir: Path, backbone: str = "tiny-gunet") -> tuple[Path, Path]:
    """A tiny registered backbone saved as a model folder and exported with dehazekit.exporters.export_onnx.

    Returns (model folder, .onnx). Needs the dehazekit/exporters packages (other helpers' work).
    """
    from dehazekit.backbones import create_backbone
    from dehazekit.exporters.onnx_export import export_onnx
    from dehazekit.models import save_model

    torch.manual_seed(0)
    model = create_backbone(backbone).eval()
    folder = out_dir / "model"
    save_model(model, folder)
    return folder, export_onnx(folder, out_dir / f"{backbone}.onnx")
