"""Building blocks of DeHamer (Guo et al., CVPR 2022; Li-Chongyi/Dehamer, MIT).

Two families, each named and laid out so the authors' state_dict keys come out unchanged:

* a three-stage Swin transformer whose patch embedding gets a transmission-aware 3D sinusoidal
  position embedding (x, y and the dark channel of the input as a haze-density "depth");
* the parts of MIRNet's multi-scale residual block (MSRB, assembled in dehamer.py): dual-attention
  units, antialiased residual down/up-sampling and selective-kernel fusion.

Everything is written export-friendly: shapes stay tensors (no ``int(...)`` of a traced size), the
shifted-window mask is built from comparisons instead of slice assignment, and the dark channel is
a min-pool rather than a 225-way unfold (same numbers: a minimum is exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------------------------
# Swin transformer with the transmission-aware position embedding
# --------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth (train mode only): drops whole residual branches per sample."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class SwinMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, ws * ws, C); batch left to -1 so exports keep it dynamic."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape(-1, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _reverse(windows: torch.Tensor, ws: int, h, w) -> torch.Tensor:
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class SwinWindowAttention(nn.Module):
    """Window MSA with a learned relative position bias table (the Swin paper's)."""

    def __init__(self, dim: int, ws: int, num_heads: int) -> None:
        super().__init__()
        self.dim, self.ws, self.num_heads = dim, ws, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = q @ k.transpose(-2, -1) + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(-1, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.reshape(-1, self.num_heads, n, n)
        attn = torch.softmax(attn, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP on (B, H*W, C) tokens."""

    def __init__(
        self, dim: int, num_heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SwinWindowAttention(dim, ws, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h, w, mask: torch.Tensor) -> torch.Tensor:
        c = x.shape[2]
        shortcut = x
        x = self.norm1(x).reshape(-1, h, w, c)
        # Zero-pad to whole windows (bottom/right), as the authors do.
        x = F.pad(x, (0, 0, 0, (self.ws - w % self.ws) % self.ws, 0, (self.ws - h % self.ws) % self.ws))
        hp, wp = x.shape[1], x.shape[2]
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        out = _reverse(self.attn(_partition(x, self.ws), mask if self.shift else None), self.ws, hp, wp)
        if self.shift:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + self.drop_path(out[:, :h, :w, :].reshape(-1, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (zero-pad odd sizes) -> LayerNorm(4C) -> Linear(4C, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h, w) -> torch.Tensor:
        c = x.shape[2]
        x = F.pad(x.reshape(-1, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(x.shape[0], -1, 4 * c)))


def shifted_window_mask(hp, wp, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask: -100 between tokens from different pre-roll regions.

    Regions are the 3x3 split at (Hp - ws, Hp - shift) and (Wp - ws, Wp - shift); written with
    comparisons on ``arange`` so the padded size may stay symbolic in an exported graph.
    """
    rows = torch.arange(hp, device=device)
    cols = torch.arange(wp, device=device)
    region_h = (rows >= hp - ws).long() + (rows >= hp - shift).long()
    region_w = (cols >= wp - ws).long() + (cols >= wp - shift).long()
    regions = (region_h[:, None] * 3 + region_w[None, :]).to(torch.float32)
    windows = _partition(regions[None, :, :, None], ws)[..., 0]  # (nW, N); indexing, not squeeze: no ONNX If
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


class SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        ws: int,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.ws = ws
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, drop_paths[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h, w) -> tuple[torch.Tensor, torch.Tensor | None]:
        hp = (h + self.ws - 1) // self.ws * self.ws
        wp = (w + self.ws - 1) // self.ws * self.ws
        mask = shifted_window_mask(hp, wp, self.ws, self.ws // 2, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, h, w, mask)
        return x, (self.downsample(x, h, w) if self.downsample is not None else None)


def dark_channel(x: torch.Tensor, kernel: int = 15) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): min over channels, then over a reflect-padded kernel window."""
    pad = (kernel - 1) // 2
    darkest = F.pad(x.amin(dim=1, keepdim=True), (pad, pad, pad, pad), mode="reflect")
    return -F.max_pool2d(-darkest, kernel, stride=1)


def position_embedding(depth: torch.Tensor, feats: int, h, w, temperature: float = 10000.0) -> torch.Tensor:
    """Sinusoidal (x, y, depth) embedding: (B, 1, h, w) depth -> (B, 3 * feats, h, w).

    Each coordinate is normalised to [0, 2*pi] by its maximum (depth per sample); channels
    interleave sin/cos of the coordinate over ``feats`` frequencies, order x, y, depth.
    """
    eps, scale = 1e-6, 2 * math.pi
    # Integer ranges cast to float: an fp16 ONNX conversion may not turn a float Range into fp16.
    xs = torch.arange(w, device=depth.device).to(torch.float32)
    ys = torch.arange(h, device=depth.device).to(torch.float32)
    x_embed = (xs / (xs.max() + eps) * scale)[None, None, :].expand(depth.shape[0], h, w)
    y_embed = (ys / (ys.max() + eps) * scale)[None, :, None].expand(depth.shape[0], h, w)
    z = depth[:, 0].to(torch.float32)
    z_embed = z / (z.flatten(1).amax(dim=1)[:, None, None] + eps) * scale
    dim_t = torch.arange(feats, dtype=torch.float32, device=depth.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)

    def encode(coord: torch.Tensor) -> torch.Tensor:
        pos = coord[..., None] / dim_t
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(3)

    return torch.cat([encode(x_embed), encode(y_embed), encode(z_embed)], dim=3).permute(0, 3, 1, 2)


class SwinPatchEmbed(nn.Module):
    """Zero-pad to the patch size, strided conv, LayerNorm over channels; (B, 3, H, W) -> (B, C, h, w)."""

    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = self.proj(F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p)))
        h, w = x.shape[2], x.shape[3]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(-1, self.dim, h, w)


class SwinEncoder(nn.Module):
    """DeHamer's Swin: returns the normalised (B, C_i, H_i, W_i) output of every stage."""

    def __init__(
        self,
        patch: int = 2,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = SwinPatchEmbed(patch, 3, embed_dim)
        total = sum(depths)
        # Linear stochastic-depth ramp 0 -> rate over all blocks (plain floats: safe on the meta device).
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    embed_dim * 2**i,
                    depth,
                    num_heads[i],
                    window_size,
                    mlp_ratio,
                    rates[start : start + depth],
                    downsample=i < len(depths) - 1,
                )
            )
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        for i, feats in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(feats))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        depth = dark_channel(x)
        x = self.patch_embed(x)
        h, w = x.shape[2], x.shape[3]
        depth = F.interpolate(depth, size=(h, w), mode="bicubic", align_corners=False)
        x = (x + position_embedding(depth, self.embed_dim // 3, h, w)).flatten(2).transpose(1, 2)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x = layer(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.reshape(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2))
            h, w = (h + 1) // 2, (w + 1) // 2
        return outs


# --------------------------------------------------------------------------------------------
# MIRNet multi-scale residual block
# --------------------------------------------------------------------------------------------
class SpatialAttention(nn.Module):
    """x * sigmoid(conv5x5([max_c(x), mean_c(x)])); conv key ``spatial.conv``."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Module()
        self.spatial.conv = nn.Conv2d(2, 1, 5, padding=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial.conv(pooled))


class ChannelAttention(nn.Module):
    """x * sigmoid(MLP(mean_hw(x))), reduction 8, no biases (keys ``conv_du.0/2``)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = channels // reduction
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class DualAttentionUnit(nn.Module):
    """x + conv1x1([SA(body(x)), CA(body(x))]); ``body.1`` is a PReLU.

    Each unit owns its PReLU: the authors' count (132,501,638) counts ``body.1.weight`` once per
    unit, and every checkpoint carries one per unit, so loading gives the same numbers.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        )
        self.SA = SpatialAttention()
        self.CA = ChannelAttention(channels)
        self.conv1x1 = nn.Conv2d(channels * 2, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        return x + self.conv1x1(torch.cat([self.SA(res), self.CA(res)], dim=1))


class BlurPool(nn.Module):
    """Antialiased stride-2 downsampling: reflect pad 1, fixed [1,2,1]x[1,2,1]/16 depthwise filter.

    ``filt`` is a frozen parameter rather than a buffer so the parameter count equals the authors'
    published 132,501,638 (which includes these 51,840 filter taps); the forward detaches it, so it
    never trains even if someone re-enables its gradient.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        filt = (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1)
        self.filt = nn.Parameter(filt, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        filt = self.filt.detach()
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), filt, stride=2, groups=filt.shape[0])


class ResidualDown(nn.Module):
    """C -> 2C at half resolution: conv/PReLU/blurpool path + blurpool/1x1 shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False),
            nn.PReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.PReLU(),
            BlurPool(c),
            nn.Conv2d(c, 2 * c, 1, bias=False),
        )
        self.bot = nn.Sequential(BlurPool(c), nn.Conv2d(c, 2 * c, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class ResidualUp(nn.Module):
    """C -> C/2 at double resolution: transposed-conv path + bilinear (align_corners=False) shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.top = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False),
            nn.PReLU(),
            nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.PReLU(),
            nn.Conv2d(c, c // 2, 1, bias=False),
        )
        self.bot = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(c, c // 2, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(x) + self.bot(x)


class Resample(nn.Module):
    """``steps`` residual down (or up) samplings in a row; key ``body.<i>``."""

    def __init__(self, c: int, steps: int, up: bool) -> None:
        super().__init__()
        layers = []
        for _ in range(steps):
            layers.append(ResidualUp(c) if up else ResidualDown(c))
            c = c // 2 if up else c * 2
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SelectiveKernelFusion(nn.Module):
    """Softmax-weighted sum of ``branches`` maps with weights from their pooled sum (MIRNet SKFF)."""

    def __init__(self, c: int, branches: int = 3, reduction: int = 8) -> None:
        super().__init__()
        d = max(int(c / reduction), 4)
        self.branches = branches
        self.conv_du = nn.Sequential(nn.Conv2d(c, d, 1, bias=False), nn.PReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(d, c, 1, bias=False) for _ in range(branches))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(feats), dim=1)  # (B, branches, C, H, W)
        z = self.conv_du(stacked.sum(dim=1).mean(dim=(2, 3), keepdim=True))
        logits = torch.stack([fc(z) for fc in self.fcs], dim=1)
        return (stacked * torch.softmax(logits, dim=1)).sum(dim=1)
