"""The paper's image transformation networks, in its own variant and in the variant most reimplementations use.

`common` (pytorch/examples' fast_neural_style and most later work): instance norm, reflection padding on every conv,
nearest-neighbour x2 upsampling followed by a conv (no checkerboard artifacts), plain conv output.
The SR networks never use instance norm: it is a style-transfer device (Ulyanov et al.) that discards each image's
per-channel mean and contrast after the first conv, so an SR net built with it cannot reproduce absolute intensities
(measured: its l_pixel training plateaued at the images' variance, ~0.07). The common SR variant has no norm layers
(as SR networks since EDSR, Lim et al. 2017), which also keeps every sample independent, so a batch split over ranks
trains exactly like the whole batch; the paper's SR variant keeps its batch norm (SyncBatchNorm under torchrun on
CUDA; torch has no CPU SyncBatchNorm, so on CPU each rank normalises over its own share of the batch).
`paper` (Johnson et al. 2016, supplementary): batch norm, one reflection pad at the input exactly as wide as the
unpadded residual convs consume (40 px for the style net, 8 px for SR), zero-padded strided and output convs,
fractionally strided (transposed) 3x3 convs for upsampling, scaled tanh output.
Both map [0, 1] RGB to [0, 1] RGB (the `common` output is unbounded during training; clamp for display).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Variant = Literal["common", "paper"]
VARIANTS: tuple[str, ...] = ("common", "paper")


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown network variant {variant!r}: choose one of {', '.join(VARIANTS)} (--variant)")
    return variant


Norm = Literal["instance", "batch", "none"]


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "none":
        return nn.Identity()
    return nn.InstanceNorm2d(channels, affine=True) if norm == "instance" else nn.BatchNorm2d(channels)


def conv(variant: str, cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A 'same' conv: reflection padded in the common variant, zero padded in the paper's."""
    if variant == "common":
        return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2))


def conv_norm_relu(variant: str, norm: str, cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(variant, cin, cout, kernel, stride), _norm(norm, cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """conv-norm-relu-conv-norm plus identity, no ReLU after the add (He et al. / Gross & Wilber, as the paper).

    The paper's variant uses unpadded 3x3 convs, so the output is 4 px smaller and the identity is centre-cropped.
    """

    def __init__(self, variant: str, norm: str, channels: int):
        super().__init__()
        self.padded = variant == "common"
        pad = nn.ReflectionPad2d(1) if self.padded else nn.Identity()
        self.body = nn.Sequential(
            pad, nn.Conv2d(channels, channels, 3), _norm(norm, channels), nn.ReLU(inplace=True),
            pad, nn.Conv2d(channels, channels, 3), _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if not self.padded:
            x = x[..., 2:-2, 2:-2]
        return x + y


def upsample(variant: str, norm: str, cin: int, cout: int) -> nn.Sequential:
    """x2 upsampling: nearest + conv (common) or a fractionally strided 3x3 conv (paper), then norm and ReLU."""
    if variant == "common":
        layer: nn.Module = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(variant, cin, cout, 3))
    else:
        layer = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    return nn.Sequential(layer, _norm(norm, cout), nn.ReLU(inplace=True))


class _Output(nn.Module):
    """Final c9s1-3. The paper squashes with a scaled tanh to the valid range; the common variant leaves it linear."""

    def __init__(self, variant: str, cin: int):
        super().__init__()
        self.conv = conv(variant, cin, 3, 9)
        self.tanh = variant == "paper"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return (torch.tanh(y) + 1) / 2 if self.tanh else y


class TransformNet(nn.Module):
    """Style transfer network: c9s1-32, d64, d128, 5 x R128, u64, u32, c9s1-3. Keeps the input's size.

    Height and width must be multiples of 4 (two stride-2 layers).
    """

    n_blocks = 5

    def __init__(self, variant: Variant = "common"):
        super().__init__()
        self.variant = _check_variant(variant)
        pad = 2 * self.n_blocks * 4 if variant == "paper" else 0  # residual convs run at 1/4 resolution: 40 px
        norm = "instance" if variant == "common" else "batch"
        self.net = nn.Sequential(
            nn.ReflectionPad2d(pad) if pad else nn.Identity(),
            conv_norm_relu(variant, norm, 3, 32, 9),
            conv_norm_relu(variant, norm, 32, 64, 3, stride=2),
            conv_norm_relu(variant, norm, 64, 128, 3, stride=2),
            *[ResidualBlock(variant, norm, 128) for _ in range(self.n_blocks)],
            upsample(variant, norm, 128, 64),
            upsample(variant, norm, 64, 32),
            _Output(variant, 32),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"TransformNet needs height and width divisible by 4, got {tuple(x.shape[-2:])}")
        return self.net(x)


class SRNet(nn.Module):
    """Super-resolution network: c9s1-64, 4 x R64, log2(scale) x2 upsampling layers of 64, c9s1-3.

    x4 maps 72x72 to 288x288; x8 maps 36x36 to 288x288 (three upsampling layers). Batch norm in the paper's
    variant, no norm layers in the common one (see the module docstring).
    """

    n_blocks = 4

    def __init__(self, scale: int = 4, variant: Variant = "common"):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"SRNet scale must be 2, 4 or 8, got {scale!r} (--scales)")
        self.scale, self.variant = scale, _check_variant(variant)
        pad = 2 * self.n_blocks if variant == "paper" else 0  # residual convs run at input resolution: 8 px
        norm = "batch" if variant == "paper" else "none"
        n_up = scale.bit_length() - 1
        self.net = nn.Sequential(
            nn.ReflectionPad2d(pad) if pad else nn.Identity(),
            conv_norm_relu(variant, norm, 3, 64, 9),
            *[ResidualBlock(variant, norm, 64) for _ in range(self.n_blocks)],
            *[upsample(variant, norm, 64, 64) for _ in range(n_up)],
            _Output(variant, 64),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
