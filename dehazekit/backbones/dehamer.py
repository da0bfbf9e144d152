"""DeHamer (Guo et al., "Image Dehazing Transformer with Transmission-Aware 3D Position Embedding",
CVPR 2022; Li-Chongyi/Dehamer ``UNet_emb``, MIT).

A CNN encoder (conv blocks + pyramid pooling, four 2x max-pools) runs beside a Swin transformer whose
patch embedding carries a 3D position embedding built from the input's dark channel (a transmission
proxy). At 1/8, 1/4 and 1/2 scale the decoder modulates the instance-normalised CNN skip with
``beta * IN(skip) + gamma``, both predicted from the Swin features, concatenates skip, modulated
skip and upsampled decoder state, and refines two of the scales with MIRNet multi-scale residual
blocks. Output: the dehazed image; the authors feed inputs normalised with mean (0.64, 0.6, 0.58) and
std (0.14, 0.15, 0.152) and crop images to multiples of 16 (pad multiple 16 here).

Checkpoint compatibility: every parameter of the authors' model exists with their key, shape and
order, including ~103 M parameters their forward never uses (MSRB1, MSRB4, E_block5, _block2,
_block6, conv3_3, conv4_1..4_4 and the mesh parts of MSRB2/3). ``prune_unused=True`` builds the model
without them; such a model still accepts full checkpoints through ``load_state_dict`` (the unused
keys are dropped on the way in), and :func:`prune_unused` drops them from a model already loaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones.dehamer_layers import DualAttentionUnit, Resample, SelectiveKernelFusion, SwinEncoder
from dehazekit.backbones.registry import register_backbone
from dehazekit.runtimes.errors import ConfigError

log = logging.getLogger(__name__)

TOP_LEVEL_UNUSED = (
    "conv3_3",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv4_4",
    "MSRB1",
    "MSRB4",
    "E_block5",
    "_block2",
    "_block6",
)


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Adaptive average pooling to (bins, bins) written as two small matrix products.

    Bin i spans [floor(i*n/bins), ceil((i+1)*n/bins)) exactly as ``F.adaptive_avg_pool2d`` (same
    numbers up to float summation order) but the bin edges are computed from the (possibly
    symbolic) size, so it exports to ONNX for sizes that ``bins`` does not divide.
    """

    def weights(n) -> torch.Tensor:
        idx = torch.arange(bins, device=x.device)
        start = torch.div(idx * n, bins, rounding_mode="floor")
        end = torch.div((idx + 1) * n + bins - 1, bins, rounding_mode="floor")
        pos = torch.arange(n, device=x.device)
        inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
        return inside.to(x.dtype) / (end - start).to(x.dtype)[:, None]  # (bins, n)

    rows, cols = weights(x.shape[2]), weights(x.shape[3])
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class AdaptivePool(nn.Module):
    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool(x, self.bins)


class PyramidPooling(nn.Module):
    """PSP pyramid: x concatenated with, per bin size, pool -> 1x1 conv -> ReLU -> bilinear upsample
    (align_corners=True); (B, C, H, W) -> (B, C + len(bins) * reduced, H, W)."""

    def __init__(self, in_dim: int, reduced: int, bins: Sequence[int] = (1, 2, 3, 4)) -> None:
        super().__init__()
        self.features = nn.ModuleList(
            nn.Sequential(AdaptivePool(b), nn.Conv2d(in_dim, reduced, 1, bias=False), nn.ReLU(inplace=True))
            for b in bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2], x.shape[3])
        pyramid = [F.interpolate(f(x), size=size, mode="bilinear", align_corners=True) for f in self.features]
        return torch.cat([x, *pyramid], dim=1)


class MultiScaleResidualBlock(nn.Module):
    """MIRNet MSRB with height 3 and width 1, as DeHamer builds it: (B, C, H, W) -> same, H, W % 4 == 0.

    Three DAU streams at full, 1/2 and 1/4 resolution (each fed by downsampling the previous),
    brought back to full resolution by ``last_up`` and fused by ``selective_kernel[0]``, then
    ``conv_out`` and a residual. With width 1 the mesh exchange never runs, so ``down['C_4']``,
    every ``up`` and ``selective_kernel[1:]`` exist only for checkpoint compatibility
    (:meth:`unused_paths` lists them for pruning).
    """

    def __init__(self, c: int, height: int = 3) -> None:
        super().__init__()
        self.height = height
        feats = [c * 2**i for i in range(height)]
        scales = [2**i for i in range(height - 1, 0, -1)]  # e.g. [4, 2]
        self.blocks = nn.ModuleList(nn.ModuleList([DualAttentionUnit(f)]) for f in feats)
        self.last_up = nn.ModuleDict({str(i): Resample(feats[i], i, up=True) for i in range(1, height)})
        self.down = nn.ModuleDict()
        for i, f in enumerate(feats):
            for s in scales[i:]:
                self.down[f"{f}_{s}"] = Resample(f, int(math.log2(s)), up=False)
        self.up = nn.ModuleDict()
        for i, f in enumerate(reversed(feats)):
            for s in scales[i:]:
                self.up[f"{f}_{s}"] = Resample(f, int(math.log2(s)), up=True)
        self.conv_out = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.selective_kernel = nn.ModuleList(SelectiveKernelFusion(f, height) for f in feats)
        self._feats = feats

    def unused_paths(self) -> list[str]:
        """Submodules (relative paths) that the width-1 forward never touches."""
        unused = [f"down.{f}_{s}" for f in self._feats for s in (2**k for k in range(2, self.height))]
        unused += [f"up.{key}" for key in self.up]
        unused += [f"selective_kernel.{i}" for i in range(1, self.height)]
        return [p for p in unused if _has_path(self, p)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = [self.blocks[0][0](x)]
        for j in range(1, self.height):
            down = self.down[f"{self._feats[j - 1]}_2"]
            streams.append(self.blocks[j][0](down(streams[-1])))
        ups = [streams[0]] + [self.last_up[str(k)](streams[k]) for k in range(1, self.height)]
        return self.conv_out(self.selective_kernel[0](ups)) + x


def _has_path(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def _conv_block(cin: int, cout: int, tail: nn.Module | None, relu_last: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
    ]
    if relu_last:
        layers.append(nn.ReLU(inplace=True))
    if tail is not None:
        layers.append(tail)
    return nn.Sequential(*layers)


def _down() -> nn.Module:
    return nn.MaxPool2d(2, stride=2)


def _up() -> nn.Module:
    return nn.UpsamplingBilinear2d(scale_factor=2)  # align_corners=True, as the authors'


# The authors' test-time normalisation (Li-Chongyi/Dehamer test loader), RGB order.
DEHAMER_MEAN = (0.64, 0.6, 0.58)
DEHAMER_STD = (0.14, 0.15, 0.152)


class DeHamer(nn.Module):
    """DeHamer ``UNet_emb``: (B, 3, H, W) normalised image -> (B, 3, H, W); H, W multiples of 16.

    ``width`` is the first encoder width (32 in the paper; every CNN width scales with it),
    ``embed_dim``/``depths``/``num_heads``/``window_size`` configure the Swin branch.
    """

    def __init__(
        self,
        width: int = 32,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12),
        window_size: int = 7,
        prune_unused: bool = False,
    ) -> None:
        super().__init__()
        depths, num_heads = [int(d) for d in depths], [int(h) for h in num_heads]
        stages_ok = len(depths) == 3 and len(num_heads) == 3 and window_size >= 2
        if width < 8 or width % 8 or embed_dim % 6 or not stages_ok:
            raise ConfigError.build(
                "invalid DeHamer config",
                got={"width": width, "embed_dim": embed_dim, "depths": depths, "num_heads": num_heads},
                expected="width a multiple of 8, embed_dim a multiple of 6, 3 Swin stages, window >= 2",
            )
        c, e = width, embed_dim
        self.conv1 = nn.Conv2d(24 * c, 8 * c, 3, padding=1)
        self.conv1_1 = nn.Conv2d(4 * e, 8 * c, 3, padding=1)
        self.conv1_2 = nn.Conv2d(4 * e, 8 * c, 3, padding=1)
        self.conv2 = nn.Conv2d(12 * c, 4 * c, 3, padding=1)
        self.conv2_1 = nn.Conv2d(2 * e, 4 * c, 3, padding=1)
        self.conv2_2 = nn.Conv2d(2 * e, 4 * c, 3, padding=1)
        self.conv3 = nn.Conv2d(6 * c, 2 * c, 3, padding=1)
        self.conv3_1 = nn.Conv2d(e, 2 * c, 3, padding=1)
        self.conv3_2 = nn.Conv2d(e, 2 * c, 3, padding=1)
        self.conv3_3 = nn.Conv2d(3 * c // 2, 3 * c // 4, 3, padding=1)  # unused by the authors' forward
        self.conv4 = nn.Conv2d(c, c, 3, padding=1)
        self.conv4_1 = nn.Conv2d(e, 3 * c // 2, 3, padding=1)  # conv4_1..4_4: unused
        self.conv4_2 = nn.Conv2d(3 * c // 2, 3 * c // 4, 3, padding=1)
        self.conv4_3 = nn.Conv2d(3 * c // 4, 3 * c // 8, 3, padding=1)
        self.conv4_4 = nn.Conv2d(3 * c // 8, 3 * c // 8, 3, padding=1)
        for i, ch in enumerate((c, 2 * c, 4 * c, 8 * c), start=1):
            setattr(self, f"PPM{i}", PyramidPooling(ch, ch // 4))
        for i, ch in enumerate((8 * c, 4 * c, 2 * c, c), start=1):
            setattr(self, f"MSRB{i}", MultiScaleResidualBlock(ch))
        self.swin_1 = SwinEncoder(2, e, depths, num_heads, window_size)
        self.E_block1 = _conv_block(3, c, _down())
        for i, ch in enumerate((2 * c, 4 * c, 8 * c, 16 * c), start=2):
            setattr(self, f"E_block{i}", _conv_block(ch, ch, _down()))
        self._block1 = _conv_block(16 * c, 8 * c, _up())
        self._block2 = _conv_block(16 * c, 8 * c, _up())  # unused
        self._block3 = _conv_block(8 * c, 4 * c, _up())
        self._block4 = _conv_block(4 * c, 2 * c, _up())
        self._block5 = _conv_block(2 * c, c, _up())
        self._block6 = _conv_block(46 * c // 32, 23 * c // 32, _up(), relu_last=False)  # unused
        self._block7 = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 3, 3, padding=1)
        )
        # Non-persistent: the authors' state_dict has no such entries and checkpoints must load strictly.
        self.register_buffer("input_mean", torch.tensor(DEHAMER_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(DEHAMER_STD).view(1, 3, 1, 1), persistent=False)
        self.pruned: list[str] = []
        self.register_load_state_dict_pre_hook(_drop_pruned_keys)
        if prune_unused:
            prune_unused_modules(self)

    def filter_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` without the keys of pruned modules (identity on an unpruned model).

        For loaders that compare keys before ``load_state_dict`` (the pre-hook does the same inside it).
        """
        heads = tuple(f"{p}." for p in self.pruned)
        return {k: v for k, v in state.items() if not (heads and k.startswith(heads))}

    @staticmethod
    def _modulate(skip: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        # Instance norm without affine/running stats (the authors' IN_* layers hold no state),
        # spelled out: the ONNX exporter rejects instance_norm when the channel count is symbolic.
        mean = skip.mean(dim=(2, 3), keepdim=True)
        var = (skip - mean).pow(2).mean(dim=(2, 3), keepdim=True)
        return (skip - mean) / torch.sqrt(var + 1e-5) * beta + gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> roughly [0, 1]; the authors normalise the input first."""
        return self.forward_raw((x - self.input_mean) / self.input_std)

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' forward on a mean/std-normalised image (their test-time transform)."""
        swin = self.swin_1(x)  # (B, e, H/2), (B, 2e, H/4), (B, 4e, H/8)
        enc1 = self.PPM1(self.E_block1(x))  # 2c @ H/2
        enc2 = self.PPM2(self.E_block2(enc1))  # 4c @ H/4
        enc3 = self.PPM3(self.E_block3(enc2))  # 8c @ H/8
        enc4 = self.PPM4(self.E_block4(enc3))  # 16c @ H/16
        up = self._block1(enc4)
        refined = self._modulate(enc3, self.conv1_1(swin[2]), self.conv1_2(swin[2]))
        dec = F.relu(self.conv1(torch.cat([enc3, refined, up], dim=1)))
        up = self.MSRB2(self._block3(dec))
        refined = self._modulate(enc2, self.conv2_1(swin[1]), self.conv2_2(swin[1]))
        dec = F.relu(self.conv2(torch.cat([enc2, refined, up], dim=1)))
        up = self.MSRB3(self._block4(dec))
        refined = self._modulate(enc1, self.conv3_1(swin[0]), self.conv3_2(swin[0]))
        dec = F.relu(self.conv3(torch.cat([enc1, refined, up], dim=1)))
        return self._block7(F.relu(self.conv4(self._block5(dec))))


def unused_module_paths(model: DeHamer) -> list[str]:
    """Module paths of the authors' model that its forward never uses (still present in ``model``)."""
    paths = [p for p in TOP_LEVEL_UNUSED if hasattr(model, p)]
    for name in ("MSRB2", "MSRB3"):
        block = getattr(model, name)
        paths += [f"{name}.{p}" for p in block.unused_paths()]
    return paths


def prune_unused_modules(model: DeHamer) -> int:
    """Delete the never-used modules in place; returns how many parameters went.

    Later ``load_state_dict`` calls drop the pruned keys from full checkpoints, so both official
    and pruned state_dicts load strictly. Outputs are unchanged (nothing removed is in the forward).
    """
    before = sum(p.numel() for p in model.parameters())
    paths = unused_module_paths(model)
    for path in reversed(paths):  # reversed: a ModuleList loses its last items first, indices stay
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        if isinstance(parent, nn.ModuleList):
            del parent[int(leaf)]  # only trailing items (selective_kernel.1/2) are ever pruned
        else:
            delattr(parent, leaf)
    model.pruned.extend(paths)
    removed = before - sum(p.numel() for p in model.parameters())
    config = getattr(model, "backbone_config", None)
    if isinstance(config, dict):
        config["prune_unused"] = True  # a saved model must rebuild pruned
    log.info("DeHamer: pruned %d unused modules (%d parameters)", len(model.pruned), removed)
    return removed


def prune_unused(model: nn.Module) -> nn.Module:
    """Public helper: drop DeHamer's unused parameters from a (loaded) model; returns the model."""
    if not isinstance(model, DeHamer):
        raise ConfigError.build("prune_unused applies to DeHamer models only", got=type(model).__name__)
    prune_unused_modules(model)
    return model


def _drop_pruned_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    # Load pre-hook: an official (full) checkpoint carries keys of modules we pruned; they hold
    # weights the forward never reads, so dropping them keeps strict loading meaningful.
    pruned = getattr(module, "pruned", ())
    if not pruned:
        return
    heads = tuple(f"{prefix}{p}." for p in pruned)
    for key in [k for k in state_dict if k.startswith(heads)]:
        del state_dict[key]


def dehamer_candidates(model: nn.Module) -> list[str]:
    """CNN encoder blocks (E_block1..4; E_block5 is unused) then every Swin block."""
    blocks = [f"E_block{i}" for i in range(1, 5)]
    for i, stage in enumerate(model.swin_1.layers):
        blocks += [f"swin_1.layers.{i}.blocks.{j}" for j in range(len(stage.blocks))]
    return blocks


def dehamer_exclude(name: str, module: nn.Module) -> bool:
    """Inside Swin blocks only the attention/MLP Linear layers (qkv, proj, fc1, fc2); every conv of
    an encoder block is kept."""
    if isinstance(module, nn.Linear):
        return name.split(".")[-1] not in ("qkv", "proj", "fc1", "fc2")
    return not isinstance(module, nn.Conv2d)


# Parameter counts of the default (paper) configuration; tests recompute both on the meta device.
# Kept literal so importing the registry does not build a 132 M-parameter model.
FULL_PARAMS = 132_501_638
PRUNED_PARAMS = 29_460_837


# Why ONNX works (the authors' adaptive pooling over non-divisible sizes does not export). Kept out of
# ``export_note`` because `dehazekit backbones` shows export_note instead of the description, and the
# description must carry the pruned count.
EXPORT_REASON = (
    "ONNX yes: pyramid pooling as bin-weight matmuls (same numbers as adaptive pooling "
    "on non-divisible sizes), shifted-window mask from comparisons"
)
_COMMON = {
    "family": "dehamer",
    "pad_multiple": 16,
    "candidates": dehamer_candidates,
    "exclude": dehamer_exclude,
    "source": "Li-Chongyi/Dehamer@70916700",
    "license": "MIT",
}


@register_backbone(
    "dehamer",
    min_size=16,
    description=f"DeHamer UNet_emb; prune_unused=True: {PRUNED_PARAMS:,} params "
    f"({FULL_PARAMS - PRUNED_PARAMS:,} never-used dropped). {EXPORT_REASON}",
    **_COMMON,
)
def dehamer(
    width: int = 32,
    embed_dim: int = 96,
    depths: Sequence[int] = (2, 2, 2),
    num_heads: Sequence[int] = (3, 6, 12),
    window_size: int = 7,
    prune_unused: bool = False,
) -> DeHamer:
    return DeHamer(width, embed_dim, depths, num_heads, window_size, prune_unused)


@register_backbone(
    "tiny-dehamer",
    min_size=16,
    tiny=True,
    description="tiny DeHamer for tests (width 8, embed 12)",
    **_COMMON,
)
def tiny_dehamer(
    width: int = 8,
    embed_dim: int = 12,
    depths: Sequence[int] = (2, 2, 2),
    num_heads: Sequence[int] = (1, 2, 2),
    window_size: int = 4,
    prune_unused: bool = False,
) -> DeHamer:
    return DeHamer(width, embed_dim, depths, num_heads, window_size, prune_unused)
