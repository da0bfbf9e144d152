"""DehazeFormer (Song et al., "Vision Transformers for Single Image Dehazing"; IDKiro/DehazeFormer, MIT).

A five-stage U-shaped transformer. Every block is ``x + attn(norm(x))`` then ``x + mlp(x)``: the
"attention" of a block is a 1x1 value projection V followed by a depthwise 5x5 reflect-padded conv,
and, in the blocks that use windowed self-attention, the attention output over 8x8 (shifted)
windows of QK/V is added to that conv branch before the 1x1 ``proj``. RescaleNorm (RLN) normalises
over (C, H, W) and re-injects the removed mean/std through two tiny 1x1 "meta" convs. The network
predicts K (1 channel) and B (3 channels) and returns ``K * x - B + x``.

Input/output follow the authors' code (they feed images scaled to [-1, 1] and read [-1, 1]);
``forward`` is the raw network so their checkpoints and numbers carry over unchanged. The model pads
internally (reflect) to its patch size 4 and, inside each attention, to the window size, so any
H, W >= ``min_size`` works (pad multiple 1). Window partition/reverse never turn a tensor shape into
a Python int, so an ONNX export keeps a dynamic batch.

State_dict keys, shapes and order equal the authors' (``WindowAttention.relative_positions`` is a
persistent buffer); checkpoints are ``{'state_dict': ...}`` with a ``module.`` prefix, unwrapped by
``load_weights``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dehazekit.backbones.gunet import PatchEmbed, PatchUnEmbed  # same layers and keys (same authors)
from dehazekit.backbones.registry import register_backbone
from dehazekit.runtimes.errors import ConfigError


class RescaleNorm(nn.Module):
    """RLN: normalise over (C, H, W); returns (normalised * weight + bias, rescale, rebias).

    rescale = meta1(std), rebias = meta2(mean): (B, C, 1, 1) maps the block applies after attention
    so the statistics that the normalisation removed are not lost (the authors' ``RLN``).
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)
        nn.init.trunc_normal_(self.meta1.weight, std=0.02)
        nn.init.ones_(self.meta1.bias)  # rescale starts at 1, rebias at 0: an identity re-injection
        nn.init.trunc_normal_(self.meta2.weight, std=0.02)
        nn.init.zeros_(self.meta2.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        out = (x - mean) / std * self.weight + self.bias
        return out, self.meta1(std), self.meta2(mean)


class Mlp(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, dim: int, hidden: int, depth_gain: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1))
        for conv in (self.mlp[0], self.mlp[2]):
            _init_conv(conv, depth_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _init_conv(conv: nn.Conv2d, gain: float) -> None:
    # Depth-scaled truncated normal (Xavier-like): keeps residual variance bounded with depth.
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ws -> (B * nW, ws * ws, C).

    The batch dimension is left to ``-1`` so a traced/exported graph keeps it dynamic.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape(-1, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h, w) -> torch.Tensor:
    """(B * nW, ws * ws, C) -> (B, H, W, C); inverse of :func:`window_partition` (batch inferred)."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_positions(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws, 2) log-spaced relative (dy, dx) between window tokens: sign(d) * log(1 + |d|)."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).float()
    return torch.sign(rel) * torch.log1p(rel.abs())


class WindowAttention(nn.Module):
    """Multi-head attention inside windows with an MLP-generated relative position bias.

    (B*nW, N, 3C) packed [Q | K | V] -> (B*nW, N, C).
    """

    def __init__(self, dim: int, ws: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError.build("DehazeFormer dim must divide by num_heads", got=(dim, num_heads))
        self.dim, self.num_heads = dim, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.register_buffer("relative_positions", relative_positions(ws))
        self.meta = nn.Sequential(nn.Linear(2, 256), nn.ReLU(inplace=True), nn.Linear(256, num_heads))

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        n = qkv.shape[1]
        qkv = qkv.reshape(-1, n, 3, self.num_heads, self.dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        bias = self.meta(self.relative_positions).permute(2, 0, 1)  # (heads, N, N)
        attn = torch.softmax(q @ k.transpose(-2, -1) + bias.unsqueeze(0), dim=-1)
        return (attn @ v).transpose(1, 2).reshape(-1, n, self.dim)


class Attention(nn.Module):
    """Token mixer: proj(dwconv(V(x)) [+ window attention of QK(x), V(x)]); (B, C, H, W) -> same."""

    def __init__(
        self, dim: int, num_heads: int, ws: int, shift: int, use_attn: bool, depth_gain: float
    ) -> None:
        super().__init__()
        self.ws, self.shift, self.use_attn = ws, shift, use_attn
        # Creation order fixes the state_dict order: conv, V, proj, QK, attn.
        self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode="reflect")
        self.V = nn.Conv2d(dim, dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        if use_attn:
            self.QK = nn.Conv2d(dim, dim * 2, 1)
            self.attn = WindowAttention(dim, ws, num_heads)
        for conv in (self.V, self.proj, getattr(self, "QK", None)):
            if conv is not None:
                _init_conv(conv, depth_gain)

    def _pad_to_windows(self, x: torch.Tensor) -> torch.Tensor:
        # Reflect-pad to whole windows; shifted blocks put ``shift`` pixels on the top/left so the
        # window grid moves by half a window (the authors' shift, no cyclic roll or mask).
        h, w = x.shape[2], x.shape[3]
        ws, s = self.ws, self.shift
        mod_h, mod_w = (ws - h % ws) % ws, (ws - w % ws) % ws
        if s > 0:
            return F.pad(x, (s, (ws - s + mod_w) % ws, s, (ws - s + mod_h) % ws), mode="reflect")
        return F.pad(x, (0, mod_w, 0, mod_h), mode="reflect")

    def _window_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        h, w = qkv.shape[2], qkv.shape[3]
        padded = self._pad_to_windows(qkv)
        hp, wp = padded.shape[2], padded.shape[3]
        windows = window_partition(padded.permute(0, 2, 3, 1), self.ws)
        out = window_reverse(self.attn(windows), self.ws, hp, wp)
        out = out[:, self.shift : self.shift + h, self.shift : self.shift + w, :]
        return out.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.V(x)
        conv_out = self.conv(v)
        if not self.use_attn:
            return self.proj(conv_out)
        attn_out = self._window_attention(torch.cat([self.QK(x), v], dim=1))
        return self.proj(conv_out + attn_out)


class TransformerBlock(nn.Module):
    """x + attn(RLN(x)) * rescale + rebias, then x + mlp(x); RLN only in blocks with attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        ws: int,
        shift: int,
        use_attn: bool,
        depth_gain: float,
    ) -> None:
        super().__init__()
        self.use_attn = use_attn
        self.norm1 = RescaleNorm(dim) if use_attn else nn.Identity()
        self.attn = Attention(dim, num_heads, ws, shift, use_attn, depth_gain)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), depth_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_attn:
            normed, rescale, rebias = self.norm1(x)
            x = x + self.attn(normed) * rescale + rebias
        else:
            x = x + self.attn(x)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    """``depth`` blocks; the last ``attn_ratio * depth`` use window attention, odd ones shifted."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        ws: int,
        attn_ratio: float,
        depth_gain: float,
    ) -> None:
        super().__init__()
        attn_depth = attn_ratio * depth
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                num_heads,
                mlp_ratio,
                ws,
                0 if i % 2 == 0 else ws // 2,
                use_attn=i >= depth - attn_depth,
                depth_gain=depth_gain,
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class SKFusion(nn.Module):
    """Selective-kernel fusion of two maps: per-channel softmax weights from their pooled sum.

    The global mean is ``mean((2, 3))`` (same numbers as adaptive pooling to 1, exports cleanly).
    """

    def __init__(self, dim: int, branches: int = 2, reduction: int = 8) -> None:
        super().__init__()
        self.branches = branches
        hidden = max(int(dim / reduction), 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, dim * branches, 1, bias=False)
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(feats), dim=1)  # (B, branches, C, H, W)
        logits = self.mlp(stacked.sum(dim=1).mean(dim=(2, 3), keepdim=True))
        c = stacked.shape[2]
        weights = torch.softmax(logits.reshape(-1, self.branches, c, 1, 1), dim=1)
        return (stacked * weights).sum(dim=1)


def _five(name: str, values: Sequence, cast=float) -> list:
    values = [cast(v) for v in values]
    if len(values) != 5:
        raise ConfigError.build(
            f"DehazeFormer {name} needs one value per stage", got=values, expected="5 values"
        )
    return values


class DehazeFormer(nn.Module):
    """DehazeFormer: (B, 3, H, W) float32 -> (B, 3, H, W); any H, W >= 4 * window_size.

    Stages at 1, 1/2, 1/4, 1/2, 1 resolution. Raw network: the authors feed [-1, 1] images.
    """

    patch_size = 4  # two 2x patch merges: the whole net pads its input to a multiple of 4

    def __init__(
        self,
        embed_dims: Sequence[int] = (24, 48, 96, 48, 24),
        mlp_ratios: Sequence[float] = (2.0, 4.0, 4.0, 2.0, 2.0),
        depths: Sequence[int] = (4, 4, 4, 2, 2),
        num_heads: Sequence[int] = (2, 4, 6, 1, 1),
        attn_ratio: Sequence[float] = (0.0, 0.5, 1.0, 0.0, 0.0),
        window_size: int = 8,
        in_chans: int = 3,
        out_chans: int = 4,
    ) -> None:
        super().__init__()
        dims = _five("embed_dims", embed_dims, int)
        ratios, heads = _five("mlp_ratios", mlp_ratios), _five("num_heads", num_heads, int)
        stage_depths, attn = _five("depths", depths, int), _five("attn_ratio", attn_ratio)
        if dims[1] != dims[3] or dims[0] != dims[4] or min(stage_depths) < 1 or window_size < 2:
            raise ConfigError.build(
                "invalid DehazeFormer config",
                got={"embed_dims": dims, "depths": stage_depths, "window_size": window_size},
                expected="embed_dims[1] == [3], [0] == [4], depths >= 1, window_size >= 2",
            )
        gain = (8 * sum(stage_depths)) ** (-1 / 4)

        def stage(i: int) -> BasicLayer:
            return BasicLayer(dims[i], stage_depths[i], heads[i], ratios[i], window_size, attn[i], gain)

        self.patch_embed = PatchEmbed(in_chans, dims[0], patch=1, kernel_size=3)
        self.layer1 = stage(0)
        self.patch_merge1 = PatchEmbed(dims[0], dims[1], patch=2)
        self.skip1 = nn.Conv2d(dims[0], dims[0], 1)
        self.layer2 = stage(1)
        self.patch_merge2 = PatchEmbed(dims[1], dims[2], patch=2)
        self.skip2 = nn.Conv2d(dims[1], dims[1], 1)
        self.layer3 = stage(2)
        self.patch_split1 = PatchUnEmbed(dims[2], dims[3], patch=2)
        self.fusion1 = SKFusion(dims[3])
        self.layer4 = stage(3)
        self.patch_split2 = PatchUnEmbed(dims[3], dims[4], patch=2)
        self.fusion2 = SKFusion(dims[4])
        self.layer5 = stage(4)
        self.patch_unembed = PatchUnEmbed(dims[4], out_chans, patch=1, kernel_size=3)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.patch_embed(x))
        skip1 = x
        x = self.layer2(self.patch_merge1(x))
        skip2 = x
        x = self.layer3(self.patch_merge2(x))
        x = self.patch_split1(x)
        x = self.layer4(self.fusion1([x, self.skip2(skip2)]) + x)
        x = self.patch_split2(x)
        x = self.layer5(self.fusion2([x, self.skip1(skip1)]) + x)
        return self.patch_unembed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> [0, 1] scale; the authors' network works in [-1, 1]."""
        return self.forward_raw(x * 2 - 1) * 0.5 + 0.5

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The authors' forward: input and output in [-1, 1] (their test.py maps x*2-1 and y*0.5+0.5)."""
        h, w = x.shape[2], x.shape[3]
        p = self.patch_size
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p), mode="reflect")
        k, b = torch.split(self.forward_features(x), (1, 3), dim=1)
        return (k * x - b + x)[:, :, :h, :w]


def dehazeformer_candidates(model: nn.Module) -> list[str]:
    """Every transformer block in forward order (layer1 .. layer5)."""
    return [
        f"layer{i}.blocks.{j}" for i in range(1, 6) for j in range(len(getattr(model, f"layer{i}").blocks))
    ]


# Block-relative paths of the LoRA targets (full names end with them; "mlp.0" etc. cover the inner Mlp).
_LORA_SUFFIXES = (
    "attn.V",
    "attn.QK",
    "attn.proj",
    "mlp.mlp.0",
    "mlp.mlp.2",
    "V",
    "QK",
    "proj",
    "mlp.0",
    "mlp.2",
)


def dehazeformer_exclude(name: str, module: nn.Module) -> bool:
    """LoRA on the attention 1x1 V/QK/proj and the MLP 1x1 convs only.

    Excluded: the depthwise 5x5 reflect conv, the RescaleNorm meta1/meta2 convs and the relative
    position MLP (``attn.attn.meta``). ``name`` may be relative to the block or the model.
    """
    if not isinstance(module, nn.Conv2d) or module.groups != 1 or tuple(module.kernel_size) != (1, 1):
        return True
    parts = name.split(".")
    if "norm1" in parts or "meta" in parts or "meta1" in parts or "meta2" in parts:
        return True
    return not any(name == s or name.endswith("." + s) for s in _LORA_SUFFIXES)


_COMMON = {
    "family": "dehazeformer",
    "pad_multiple": 1,
    "candidates": dehazeformer_candidates,
    "exclude": dehazeformer_exclude,
    "source": "IDKiro/DehazeFormer@5af7c34d",
    "license": "MIT",
}
_T = {
    "embed_dims": (24, 48, 96, 48, 24),
    "mlp_ratios": (2.0, 4.0, 4.0, 2.0, 2.0),
    "depths": (4, 4, 4, 2, 2),
    "num_heads": (2, 4, 6, 1, 1),
    "attn_ratio": (0.0, 0.5, 1.0, 0.0, 0.0),
}
_S = {**_T, "depths": (8, 8, 8, 4, 4), "attn_ratio": (0.25, 0.5, 0.75, 0.0, 0.0)}
_TINY = {
    "embed_dims": (8, 16, 16, 16, 8),
    "mlp_ratios": (2.0,) * 5,
    "depths": (1, 2, 2, 1, 1),
    "num_heads": (1, 2, 2, 1, 1),
    "attn_ratio": (0.0, 1.0, 1.0, 0.0, 0.0),
}
_ABOUT = "windowed transformer U-Net; pads internally; authors' I/O in [-1, 1]; ONNX yes, dynamic batch"


@register_backbone("dehazeformer-t", min_size=32, description=f"DehazeFormer-T, {_ABOUT}", **_COMMON)
def dehazeformer_t(
    embed_dims: Sequence[int] = _T["embed_dims"],
    mlp_ratios: Sequence[float] = _T["mlp_ratios"],
    depths: Sequence[int] = _T["depths"],
    num_heads: Sequence[int] = _T["num_heads"],
    attn_ratio: Sequence[float] = _T["attn_ratio"],
    window_size: int = 8,
) -> DehazeFormer:
    return DehazeFormer(embed_dims, mlp_ratios, depths, num_heads, attn_ratio, window_size)


@register_backbone("dehazeformer-s", min_size=32, description=f"DehazeFormer-S, {_ABOUT}", **_COMMON)
def dehazeformer_s(
    embed_dims: Sequence[int] = _S["embed_dims"],
    mlp_ratios: Sequence[float] = _S["mlp_ratios"],
    depths: Sequence[int] = _S["depths"],
    num_heads: Sequence[int] = _S["num_heads"],
    attn_ratio: Sequence[float] = _S["attn_ratio"],
    window_size: int = 8,
) -> DehazeFormer:
    return DehazeFormer(embed_dims, mlp_ratios, depths, num_heads, attn_ratio, window_size)


# Window 4 at 1/4 scale: reflect padding of up to 3 pixels needs >= 4 pixels there, hence 16.
@register_backbone(
    "tiny-dehazeformer",
    min_size=16,
    tiny=True,
    description="tiny DehazeFormer for tests (dims 8/16, window 4)",
    **_COMMON,
)
def tiny_dehazeformer(
    embed_dims: Sequence[int] = _TINY["embed_dims"],
    mlp_ratios: Sequence[float] = _TINY["mlp_ratios"],
    depths: Sequence[int] = _TINY["depths"],
    num_heads: Sequence[int] = _TINY["num_heads"],
    attn_ratio: Sequence[float] = _TINY["attn_ratio"],
    window_size: int = 4,
) -> DehazeFormer:
    return DehazeFormer(embed_dims, mlp_ratios, depths, num_heads, attn_ratio, window_size)
