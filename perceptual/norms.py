"""Instance norms for the fast path: one that keeps channels_last tensors channels_last, and one that also folds the
statistics and the affine into a per-(N, C) scale and shift applied in one pass.

Why: torch's instance norm (ATen `instance_norm`) reshapes its input to (1, N*C, H, W) through `.contiguous()` and runs
batch norm on that, so a channels_last input comes back NCHW (checked on torch 2.14: the output of
F.instance_norm on a channels_last tensor is NCHW-contiguous). The style network has 15 instance norms, so a
channels_last fast path would convert layouts 15 times each way per forward, and again in the backward, which is
exactly the transpose cost channels_last is meant to remove (DESIGN.md section 7: 1.7 ms of layout transposes per
training step on an H100).

`LayoutPreservingInstanceNorm2d` computes the same thing with a per-(N, C) var_mean over H and W and elementwise ops,
which follow the input's memory format; statistics in fp32 (also under autocast), output in the input's dtype.
It is used only where it matters: `preserve_channels_last_(net)` swaps the class of every instance norm that uses
per-image statistics; for NCHW inputs it falls back to torch's kernel, so results there are unchanged.

`FusedInstanceNorm2d` (FastConfig.fused_norm, on for CUDA): torch's kernel and the layout-preserving one each make
about seven passes over the activation (upcast, statistics, subtract, rsqrt-multiply, weight, bias, downcast). This
one computes the per-(N, C) statistics in fp32 (one read; one more for the upcast of a bf16 input) and applies
`x * scale + shift` (scale = weight / sqrt(var + eps), shift = bias - mean * scale) in one addcmul in the input's
dtype and layout, as the tiled forward's frozen norms do. It equals nn.InstanceNorm2d up to rounding (fp32: the
summation order; bf16: scale and shift rounded to bf16, the same order as the input's own rounding), not bit for
bit, so it is off on the CPU, whose results are kept bit-identical to the reference path.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FusedInstanceNorm2d", "LayoutPreservingInstanceNorm2d", "fuse_instance_norms_", "is_channels_last",
           "preserve_channels_last_"]


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out NHWC (and not also plain contiguous, as 1x1 or single-channel tensors are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class LayoutPreservingInstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d (per-image statistics) whose output keeps a channels_last input's layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uses_running = self.track_running_stats and not self.training
        if uses_running or not is_channels_last(x):
            return super().forward(x)
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.float()[None, :, None, None] + self.bias.float()[None, :, None, None]
        self._update_running(x, var, mean)
        return y.to(x.dtype)

    def _update_running(self, x: torch.Tensor, var: torch.Tensor, mean: torch.Tensor) -> None:
        if self.track_running_stats and self.training:  # keep nn.InstanceNorm2d's running-average contract
            assert self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                n = x.shape[2] * x.shape[3]
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.mean(dim=0).flatten(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / max(n - 1, 1)).mean(dim=0).flatten(), alpha=m)


class FusedInstanceNorm2d(LayoutPreservingInstanceNorm2d):
    """nn.InstanceNorm2d (per-image statistics) as fp32 statistics plus one scale-and-shift pass, in any layout
    (channels_last stays channels_last); output in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.track_running_stats and not self.training:
            return nn.InstanceNorm2d.forward(self, x)
        var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight.float()[None, :, None, None]
            shift = self.bias.float()[None, :, None, None] - mean * scale
        else:
            shift = -mean * scale
        self._update_running(x, var, mean)
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


def preserve_channels_last_(net: nn.Module) -> int:
    """Swap (in place) every nn.InstanceNorm2d of `net` for the layout-preserving one (same parameters and buffers,
    same state_dict keys). Returns how many were swapped."""
    swapped = 0
    for m in net.modules():
        if type(m) is nn.InstanceNorm2d:
            m.__class__ = LayoutPreservingInstanceNorm2d
            swapped += 1
    return swapped


def fuse_instance_norms_(net: nn.Module) -> int:
    """Swap (in place) every nn.InstanceNorm2d of `net` (plain or layout-preserving) for FusedInstanceNorm2d (same
    parameters, buffers and state_dict keys). Returns how many were swapped."""
    swapped = 0
    for m in net.modules():
        if type(m) in (nn.InstanceNorm2d, LayoutPreservingInstanceNorm2d):
            m.__class__ = FusedInstanceNorm2d
            swapped += 1
    return swapped
