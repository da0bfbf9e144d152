"""DEA-Net (Chen et al., TIP 2024; cecret3350/DEA-Net) in both of the authors' forms.

``form="deploy"`` is the authors' ``Backbone``: every DEConv already folded into a plain 3x3 conv
(their released checkpoints). ``form="train"`` is ``DEANet`` with five-branch DEConv (their training
checkpoints, often ``{'model': ...}`` with a ``module.`` prefix; the loader unwraps both).
``reparameterize()`` folds a train-form model into a deploy-form one with the same outputs.

Layout: a three-level U-shape. Level 1 (C) and level 2 (2C) have four DEBlocks on the way down and
four on the way up; level 3 (4C) has eight DEABlocks (DEBlock + content-guided attention). Strided
3x3 convs go down, transposed convs go up, and CGA fusion merges each encoder feature with the
decoder. Forward: (B, 3, H, W) -> (B, 3, H, W), H and W multiples of 4.

LoRA: adaptation runs on the deploy form. In the train form DEConv computes its kernel from its
branches, so the branch convs cannot be wrapped and are excluded.
"""

from __future__ import annotations

import torch
from torch import nn

from dehazekit.backbones.dea_layers import CGAFusion, DEConv, add_attention, content_guided_attention
from dehazekit.backbones.registry import create_backbone, register_backbone
from dehazekit.runtimes.errors import ConfigError

FORMS = ("deploy", "train")
LEVEL1 = [f"down_level1_block{i}" for i in range(1, 5)]
LEVEL2 = [f"down_level2_block{i}" for i in range(1, 5)]
LEVEL3 = [f"level3_block{i}" for i in range(1, 9)]
UP2 = [f"up_level2_block{i}" for i in range(1, 5)]
UP1 = [f"up_level1_block{i}" for i in range(1, 5)]
# The BiLaLoRA paper searches the 16 encoder and bottleneck blocks of DEA-Net.
BILALORA_BLOCKS = tuple(LEVEL1 + LEVEL2 + LEVEL3)
# Every repeated block and both fusion blocks, in the order forward() runs them.
FORWARD_BLOCKS = tuple(LEVEL1 + LEVEL2 + LEVEL3 + ["mix1"] + UP2 + ["mix2"] + UP1)


def _first_conv(dim: int, train: bool) -> nn.Module:
    return DEConv(dim) if train else nn.Conv2d(dim, dim, 3, padding=1, bias=True)


class DEBlock(nn.Module):
    """x + conv2(x + relu(conv1(x))), conv1 a DEConv (train) or its folded 3x3 conv (deploy)."""

    def __init__(self, dim: int, train: bool) -> None:
        super().__init__()
        self.conv1 = _first_conv(dim, train)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)) + x) + x


class DEABlock(DEBlock):
    """DEBlock whose second conv's output is reweighted by content-guided attention before the skip."""

    def __init__(self, dim: int, train: bool, reduction: int = 8) -> None:
        super().__init__(dim, train)
        add_attention(self, dim, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv2(self.act1(self.conv1(x)) + x)
        return res * content_guided_attention(self, res) + x


class DEANet(nn.Module):
    """DEA-Net, either form; (B, 3, H, W) -> (B, 3, H, W) with H, W multiples of 4."""

    def __init__(self, base_dim: int = 32, form: str = "deploy") -> None:
        super().__init__()
        if form not in FORMS:
            raise ConfigError.build(
                "unknown DEA-Net form",
                got=form,
                expected=list(FORMS),
                fix="use form='deploy' (folded convs) or form='train' (DEConv)",
            )
        if not isinstance(base_dim, int) or base_dim < 2:
            raise ConfigError.build("DEA-Net base_dim must be an int >= 2", got=base_dim)
        self.base_dim, self.form = base_dim, form
        train, c = form == "train", base_dim
        # Attribute order reproduces the authors' state_dict order.
        self.down1 = nn.Sequential(nn.Conv2d(3, c, 3, padding=1))
        self.down2 = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.down3 = nn.Sequential(nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        for name in LEVEL1 + UP1:
            setattr(self, name, DEBlock(c, train))
        self.fe_level_2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        for name in LEVEL2 + UP2:
            setattr(self, name, DEBlock(2 * c, train))
        self.fe_level_3 = nn.Conv2d(4 * c, 4 * c, 3, padding=1)
        for name in LEVEL3:
            setattr(self, name, DEABlock(4 * c, train))
        self.up1 = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)
        )
        self.up2 = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)
        )
        self.up3 = nn.Sequential(nn.Conv2d(c, 3, 3, padding=1))
        self.mix1 = CGAFusion(4 * c, reduction=8)
        self.mix2 = CGAFusion(2 * c, reduction=4)

    def _run(self, names: list[str], x: torch.Tensor) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level1 = self._run(LEVEL1, self.down1(x))
        down2 = self.down2(level1)
        level2 = self._run(LEVEL2, self.fe_level_2(down2))
        down3 = self.down3(level2)
        level3 = self._run(LEVEL3, self.fe_level_3(down3))
        up = self._run(UP2, self.up1(self.mix1(down3, level3)))
        up = self._run(UP1, self.up2(self.mix2(down2, up)))
        return self.up3(up)

    @torch.no_grad()
    def reparameterize(self) -> DEANet:
        """Deploy-form model with every DEConv folded into one 3x3 conv (same outputs).

        Built with ``create_backbone(<same name>, base_dim=..., form="deploy")`` (name "dea" unless this
        model came from another DEA-Net registration) so it carries registry name and config; a
        deploy-form model returns itself.
        """
        if self.form == "deploy":
            return self
        name = getattr(self, "backbone_name", "dea")
        deploy = create_backbone(name, base_dim=self.base_dim, form="deploy")
        state = {}
        for key, value in self.state_dict().items():
            if ".conv1.conv1_" not in key:
                state[key] = value
        for name, module in self.named_modules():
            if isinstance(module, DEConv):
                state[f"{name}.weight"], state[f"{name}.bias"] = module.fused_kernel()
        deploy.load_state_dict(state, strict=True)
        param = next(self.parameters())
        return deploy.to(device=param.device, dtype=param.dtype).train(self.training)


def dea_candidates(model: nn.Module) -> list[str]:
    return list(FORWARD_BLOCKS)


# Content-guided attention generators (sa.sa, ca.ca.*, pa.pa2) and DEConv's branch convs are never
# wrapped: the first are 1x1/7x7 filter generators, the second feed a kernel DEConv builds itself.
_EXCLUDED_PARTS = {"sa", "ca", "pa", "conv1_1", "conv1_2", "conv1_3", "conv1_4", "conv1_5"}


def dea_exclude(name: str, module: nn.Module) -> bool:
    """True for convs LoRA must skip inside a DEA-Net block (see _EXCLUDED_PARTS; depthwise convs)."""
    if not isinstance(module, (nn.Conv2d, nn.Linear)):
        return True
    if isinstance(module, nn.Conv2d) and module.groups != 1:
        return True
    return bool(_EXCLUDED_PARTS.intersection(name.split(".")))


# Two stride-2 convs -> pad multiple 4; the 7x7 reflect-padded attention convs at 1/4 scale need
# more than 3 pixels there, hence min_size 16.
_COMMON = {
    "family": "dea",
    "pad_multiple": 4,
    "min_size": 16,
    "candidates": dea_candidates,
    "exclude": dea_exclude,
    "presets": {"bilalora": BILALORA_BLOCKS},
    "source": "cecret3350/DEA-Net@599d4d55",
    "license": "none stated by the authors",
}


@register_backbone(
    "dea",
    description="DEA-Net; params shown for form='deploy' (form='train' with DEConv: 7,789,313)",
    **_COMMON,
)
def dea(base_dim: int = 32, form: str = "deploy") -> DEANet:
    return DEANet(base_dim=base_dim, form=form)


@register_backbone("tiny-dea", tiny=True, description="tiny DEA-Net for tests (base_dim 4)", **_COMMON)
def tiny_dea(base_dim: int = 4, form: str = "deploy") -> DEANet:
    return DEANet(base_dim=base_dim, form=form)
